"""The report render test's browser lookup: any Chromium-family name on PATH, and no silent skip in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import BROWSERS, chromium, find_browser


def _executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("name", BROWSERS)
def test_each_browser_name_on_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_browser() is None
    binary = _executable(tmp_path, name)
    assert find_browser() == binary


def test_no_browser_skips_locally_and_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = tmp_path / "install.sh"
    failing.write_text("echo 'install-chromium: not root' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LQH_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-chromium: not root"):
        chromium(failing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no browser on PATH"):
        chromium(failing)
    monkeypatch.delenv("CI")
    monkeypatch.setenv("LQH_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="looked for chromium, chromium-browser, google-chrome, chrome"):
        chromium(failing)


def test_a_browser_the_installer_puts_on_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    installer = tmp_path / "install.sh"
    installer.write_text(f"printf '#!/bin/sh\\n' > {bin_dir}/chromium && /bin/chmod +x {bin_dir}/chromium\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert chromium(installer) == bin_dir / "chromium"
