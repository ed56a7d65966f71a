"""Users, passwords and JWTs as KalamDB issues them (HS256, issuer ``kalamdb``, claims sub/role/token_type)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass

import jwt

from refserver.errors import SqlError

ROLES = ("user", "service", "dba", "system")
ROLE_ALIASES = {
    "viewer": "user",
    "readonly": "user",
    "developer": "service",
    "analyst": "service",
    "admin": "dba",
}
ISSUER = "kalamdb"
ACCESS_HOURS = 24
MIN_PASSWORD = 8
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "admin123",
        "letmein1",
        "welcome1",
        "11111111",
        "00000000",
        "abc12345",
        "passw0rd",
        "changeme",
        "sunshine",
        "football",
        "baseball",
        "trustno1",
        "superman",
    }
)
_ITERATIONS = 20_000
_PASSWORD_LITERAL = re.compile(r"(PASSWORD\s+)'(?:[^']|'')*'?", re.IGNORECASE)


def redact_passwords(sql: str) -> str:
    """``sql`` with the literal after each ``PASSWORD`` replaced, so a logged statement never shows a password."""
    return _PASSWORD_LITERAL.sub(r"\1'***'", sql)


def canonical_role(role: str) -> str:
    """KalamDB role for a role name or alias; raises ``SqlError`` for an unknown one."""
    name = ROLE_ALIASES.get(role.lower(), role.lower())
    if name not in ROLES:
        raise SqlError("INVALID_SQL", f"Unknown role '{role}' (use user, service, dba or system)")
    return name


def check_password(password: str) -> None:
    """KalamDB's password policy: at least 8 characters, not a common password."""
    if len(password) < MIN_PASSWORD:
        raise SqlError("SQL_EXECUTION_ERROR", f"Password must be at least {MIN_PASSWORD} characters")
    if password.lower() in _COMMON:
        raise SqlError("SQL_EXECUTION_ERROR", "Password is too common")


def hash_password(password: str) -> str:
    """A salted PBKDF2-SHA256 hash, ``pbkdf2$iterations$salt$digest`` (hex)."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2${_ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; an empty stored hash never matches."""
    try:
        _, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's subject, role, type and expiry (epoch seconds)."""

    user_id: str
    role: str
    token_type: str
    expires_at: float


class TokenError(Exception):
    """A token is missing, malformed, expired or of the wrong kind; ``code`` is KalamDB's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Tokens:
    """Issues and verifies JWTs; verified tokens are cached until they expire."""

    def __init__(self, secret: str, access_hours: float = ACCESS_HOURS) -> None:
        self.secret = secret
        self.access_seconds = access_hours * 3600
        self._cache: dict[str, Claims] = {}

    def issue(self, user_id: str, role: str, token_type: str) -> tuple[str, float]:
        """A signed token and its expiry (epoch seconds); refresh tokens live 7× longer."""
        now = time.time()
        lifetime = self.access_seconds * (7 if token_type == "refresh" else 1)
        exp = now + lifetime
        claims = {
            "sub": user_id,
            "iss": ISSUER,
            "iat": int(now),
            "exp": int(exp),
            "role": role,
            "token_type": token_type,
            "jti": os.urandom(8).hex(),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256"), exp

    def verify(self, token: str, token_type: str = "access") -> Claims:
        """The claims of a valid token of ``token_type``, else ``TokenError``."""
        claims = self._cache.get(token)
        now = time.time()
        if claims is None:
            try:
                raw = jwt.decode(
                    token,
                    self.secret,
                    algorithms=["HS256"],
                    issuer=ISSUER,
                    options={"require": ["exp", "sub"]},
                )
            except jwt.ExpiredSignatureError:
                raise TokenError("TOKEN_EXPIRED", "Token has expired") from None
            except jwt.PyJWTError as exc:
                raise TokenError("INVALID_CREDENTIALS", f"Invalid token: {exc}") from None
            claims = Claims(str(raw["sub"]), str(raw.get("role", "user")), str(raw.get("token_type", "")), raw["exp"])
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[token] = claims
        if claims.expires_at <= now:
            self._cache.pop(token, None)
            raise TokenError("TOKEN_EXPIRED", "Token has expired")
        if claims.token_type != token_type:
            raise TokenError("INVALID_CREDENTIALS", f"Expected an {token_type} token")
        return claims

    def forget_user(self, user_id: str) -> None:
        """Drop cached tokens of a deleted or changed user."""
        for token in [t for t, c in self._cache.items() if c.user_id == user_id]:
            del self._cache[token]
