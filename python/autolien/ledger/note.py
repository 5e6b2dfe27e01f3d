"""C2SP signed notes, tlog checkpoints and tlog cosignatures (Ed25519).

* Signed note (c2sp.org/signed-note): UTF-8 text ending in a newline, a blank
  line, then signature lines ``— <name> <base64(key ID || signature)>``. The key
  ID is ``SHA-256(name || 0x0A || type || public key)[:4]``; type 0x01 is an
  Ed25519 note signature over the text.
* Keys are written ``<name>+<hex key ID>+<base64(type || public key)>``
  (verifier) and ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``
  (signer), as golang.org/x/mod/sumdb/note does.
* Checkpoint (c2sp.org/tlog-checkpoint): the note text ``<origin>\\n<size>\\n
  <base64 root>\\n`` plus optional extension lines.
* Cosignature (c2sp.org/tlog-cosignature): type 0x04; the witness signs
  ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint body, and the
  signature line holds ``key ID || u64 big-endian t || signature``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ..errors import SignatureError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "cosign_checkpoint",
    "key_id",
    "open_note",
    "sign_note",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || alg || public key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        msg = f"key name must be non-empty, without spaces or '+': {name!r}"
        raise ValueError(msg)


def _b64decode(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        msg = f"{what} is not valid base64"
        raise ValueError(msg) from None


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that checks signatures made by one named signer."""

    name: str
    key_id: bytes
    public_key: bytes
    alg: int = ALG_ED25519

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            msg = f"verifier key must be name+keyid+key, got {vkey!r}"
            raise ValueError(msg)
        name, hexid, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            msg = "verifier key must be an Ed25519 key (type 0x01 or 0x04, 32 bytes)"
            raise ValueError(msg)
        kid = key_id(name, raw[0], raw[1:])
        if len(hexid) != 8 or hexid.lower() != kid.hex():
            msg = f"verifier key ID {hexid} does not match its key (expected {kid.hex()})"
            raise ValueError(msg)
        return cls(name, kid, raw[1:], raw[0])

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([self.alg]) + self.public_key).decode()}"

    @functools.cached_property
    def _key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes (or cosignatures with alg 0x04)."""

    name: str
    seed: bytes = field(repr=False)
    alg: int = ALG_ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != 32:
            msg = "Ed25519 seed must be 32 bytes"
            raise ValueError(msg)

    @classmethod
    def generate(cls, name: str, alg: int = ALG_ED25519) -> NoteSigner:
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, seed, alg)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            msg = "signer key must be PRIVATE+KEY+name+keyid+key"
            raise ValueError(msg)
        name, hexid, b64 = parts[2:]
        raw = _b64decode(b64, "signer key")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            msg = "signer key must be an Ed25519 key (type 0x01 or 0x04, 32 bytes)"
            raise ValueError(msg)
        signer = cls(name, raw[1:], raw[0])
        if hexid.lower() != signer.key_id.hex():
            msg = f"signer key ID {hexid} does not match its key (expected {signer.key_id.hex()})"
            raise ValueError(msg)
        return signer

    # Key objects are cached: building one costs more than a signature.
    @functools.cached_property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @functools.cached_property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @functools.cached_property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    @property
    def skey(self) -> str:
        raw = base64.b64encode(bytes([self.alg]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{raw}"

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key, self.alg)

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    blob: bytes  # what follows the key ID: the signature (and for 0x04, the timestamp first)
    verified: bool = False


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    def to_str(self) -> str:
        lines = "".join(
            f"{_DASH}{s.name} {base64.b64encode(s.key_id + s.blob).decode()}\n"
            for s in self.signatures
        )
        return f"{self.text}\n{lines}"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        msg = "note text must end with a newline"
        raise ValueError(msg)
    if "\n\n" in text:
        msg = "note text must not contain a blank line"
        raise ValueError(msg)


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """Signs ``text`` with every signer and returns the note."""
    _check_text(text)
    sigs = []
    for s in signers:
        if s.alg != ALG_ED25519:
            msg = f"signer {s.name} has type 0x{s.alg:02x}; notes are signed with type 0x01"
            raise ValueError(msg)
        sigs.append(NoteSignature(s.name, s.key_id, s.sign(text.encode()), True))
    if not sigs:
        msg = "at least one signer is needed"
        raise ValueError(msg)
    return SignedNote(text, tuple(sigs)).to_str()


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    # A signed note is UTF-8 text: a lone surrogate cannot be signed bytes.
    try:
        note.encode()
    except UnicodeEncodeError as e:
        msg = f"malformed note: not UTF-8 text at character {e.start}"
        raise SignatureError(msg) from None
    at = note.rfind("\n\n")
    if at < 0:
        msg = "malformed note: no blank line before the signatures"
        raise SignatureError(msg)
    text = note[: at + 1]
    sig_block = note[at + 2 :]
    if not sig_block.endswith("\n"):
        msg = "malformed note: signature block must end with a newline"
        raise SignatureError(msg)
    sigs = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_DASH):
            msg = f"malformed signature line: {line!r}"
            raise SignatureError(msg)
        name, _, b64 = line[len(_DASH) :].partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            msg = f"signature of {name} is not valid base64"
            raise SignatureError(msg) from None
        if not name or len(blob) < 5:
            msg = f"malformed signature line: {line!r}"
            raise SignatureError(msg)
        sigs.append((name, blob))
    return text, sigs


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> SignedNote:
    """Parses a note and checks its signatures against ``verifiers``.

    Signatures from unknown keys are kept with ``verified=False``. Raises
    SignatureError when a known key's signature is bad, or when no known key
    signed the note.
    """
    text, raw_sigs = _split_note(note)
    by_id = {(v.name, v.key_id): v for v in verifiers}
    out = []
    any_ok = False
    for name, blob in raw_sigs:
        kid, rest = blob[:4], blob[4:]
        v = by_id.get((name, kid))
        if v is None:
            out.append(NoteSignature(name, kid, rest, False))
            continue
        if v.alg == ALG_COSIGNATURE_V1:
            if len(rest) != 72:
                msg = f"cosignature of {name} must be 8 + 64 bytes"
                raise SignatureError(msg)
            ts = int.from_bytes(rest[:8], "big")
            ok = v.verify(cosignature_message(text, ts), rest[8:])
        else:
            ok = len(rest) == 64 and v.verify(text.encode(), rest)
        if not ok:
            msg = f"signature of {name} ({kid.hex()}) does not verify"
            raise SignatureError(msg)
        any_ok = True
        out.append(NoteSignature(name, kid, rest, True))
    if not any_ok:
        msg = "note has no signature from a known key"
        raise SignatureError(msg)
    return SignedNote(text, tuple(out))


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign_checkpoint(checkpoint_text: str, witness: NoteSigner, timestamp: int) -> str:
    """A tlog-cosignature/v1 signature line over a checkpoint body."""
    if witness.alg != ALG_COSIGNATURE_V1:
        msg = "a witness cosigns with a type 0x04 key"
        raise ValueError(msg)
    sig = witness.sign(cosignature_message(checkpoint_text, timestamp))
    blob = witness.key_id + timestamp.to_bytes(8, "big") + sig
    return f"{_DASH}{witness.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        ext = "".join(f"{e}\n" for e in self.extensions)
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n{ext}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            msg = "checkpoint needs origin, size and root lines, each ending in a newline"
            raise ValueError(msg)
        origin, size_s, root_s = lines[0], lines[1], lines[2]
        if not origin:
            msg = "checkpoint origin is empty"
            raise ValueError(msg)
        if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            msg = f"checkpoint size {size_s!r} is not a decimal number"
            raise ValueError(msg)
        root = _b64decode(root_s, "checkpoint root")
        return cls(origin, int(size_s), root, tuple(lines[3:-1]))
