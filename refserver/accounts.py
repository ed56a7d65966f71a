"""Users as the HTTP and WebSocket handlers see them: root's setup, logins' records, and who a token is.

One object owns the user records of the store, the token issuer and the small cache of verified
principals, so that the handlers need this and nothing else of the server to authenticate.
"""

from __future__ import annotations

from refserver import auth
from refserver.auth import TokenError, Tokens
from refserver.engine import Principal
from refserver.storage import Store, UserRecord, now_us


class Accounts:
    """The server's users and tokens."""

    def __init__(self, store: Store, tokens: Tokens) -> None:
        self.store = store
        self.tokens = tokens
        self._users: dict[str, UserRecord] = {}

    def ensure_root(self, password: str | None) -> None:
        """Create root on first start; set its password when one is given."""
        record = self.store.user("root")
        now = now_us()
        if record is None:
            record = UserRecord("root", "", "system", "root@localhost", now, now)
        if password:
            auth.check_password(password)
            record.password_hash = auth.hash_password(password)
            record.updated_at = now
        self.store.put_user(record)

    def needs_setup(self) -> bool:
        """Whether root has no password yet (``POST /v1/api/auth/setup`` must run first)."""
        record = self.store.user("root")
        return record is None or record.password_hash == ""

    def set_root_password(self, password: str) -> None:
        record = self.store.user("root")
        assert record is not None
        record.password_hash = auth.hash_password(password)
        record.updated_at = now_us()
        self.store.put_user(record)

    def user(self, user_id: str) -> UserRecord | None:
        return self.store.user(user_id)

    def add(self, record: UserRecord) -> None:
        self.store.put_user(record)

    def touch(self, user_id: str) -> None:
        """Note a login (``system.users.last_seen``)."""
        self.store.touch_user(user_id)

    def principal_for(self, token: str) -> Principal:
        """The caller of an access token; the user must still exist with the token's role."""
        claims = self.tokens.verify(token, "access")
        record = self._users.get(claims.user_id) or self.store.user(claims.user_id)
        if record is None or record.role != claims.role:
            self._users.pop(claims.user_id, None)
            raise TokenError("INVALID_CREDENTIALS", "User does not exist or its role changed")
        self._users[claims.user_id] = record
        return Principal(record.user_id, record.role)

    def forget(self, user_id: str) -> None:
        """A dropped user, or one whose role changed: its tokens and cached record no longer count."""
        self._users.pop(user_id, None)
        self.tokens.forget_user(user_id)
