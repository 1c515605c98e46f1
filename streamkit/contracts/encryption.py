"""Field-level encryption of the contract fields tagged sensitive, with Tink's AEAD.

A field of a contract is sensitive when its ``.avsc`` tags it ``PII`` (Confluent's
``"confluent:tags": ["PII"]``). Its value is encrypted before the record is encoded and
produced, and decrypted after decoding only where a keyset is configured:

- ``STREAMKIT_KEYSET``: a Tink keyset file (JSON). Cleartext for development
  (``streamkit keyset create``), or encrypted with a KMS key when
  ``STREAMKIT_KEYSET_KMS_URI`` names one: the KMS client of that URI is whatever the app
  registered with ``tink.register_kms_client`` (Tink's GCP and AWS clients, or your own).
- Rotation (``streamkit keyset rotate``) adds a key and makes it the primary one: new
  values are encrypted with it, older ones still decrypt with the keys kept before it.

Only ``string`` and ``bytes`` fields (nullable or not) can be tagged, so that the contract
still describes the bytes on the wire: a string holds ``enc1:`` and the base64 of the
ciphertext, a ``bytes`` field ``enc1:`` and the ciphertext. The field's full name is the
AEAD's associated data, so a ciphertext moved to another field or contract does not
decrypt. A process without the keyset reads and forwards ciphertext unchanged (dead
letters and replays copy bytes, so they keep it too) and refuses to write a plaintext
value into a sensitive field; it cannot tell a plaintext that starts with ``enc1:`` from
ciphertext, which a process with the keyset can (it encrypts such a value).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from streamkit.errors import ConfigError, ContractError, SerializationError

__all__ = [
    "PII",
    "FieldCipher",
    "SealedSerde",
    "create_keyset",
    "load_aead",
    "rotate_keyset",
    "sealed",
    "sensitive_fields",
]

PII = "PII"
_MARK = "enc1:"
_MARK_BYTES = _MARK.encode()
_TAGS = "confluent:tags"
_TEMPLATE = "AES256_GCM"


def sensitive_fields(schema_json: str, contract: str) -> list[tuple[str, ...]]:
    """The paths of the PII-tagged fields of a record contract (nested records
    included); a tag on a field that is not a string or bytes is refused."""
    found: list[tuple[str, ...]] = []
    for path, field in _fields(orjson.loads(schema_json), ()):
        if PII not in (field.get(_TAGS) or ()):
            continue
        kinds = _kinds(field)
        if not {k for k in kinds if k != "null"} <= {"string", "bytes"} or kinds == ["null"]:
            raise ContractError(
                f"field {'.'.join(path)} is tagged {PII} but is {field['type']}: only string "
                "and bytes fields can be encrypted",
                schema=contract,
            )
        found.append(path)
    return found


def _fields(node: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if not isinstance(node, dict) or node.get("type") != "record":
        return
    for field in node.get("fields", []):
        path = (*prefix, field["name"])
        yield path, field
        for kind in _kinds(field):
            yield from _fields(kind, path)


def _kinds(field: Any) -> list[Any]:
    """A field's type, or the members of its union."""
    return field["type"] if isinstance(field["type"], list) else [field["type"]]


class FieldCipher:
    """Seals and opens the sensitive fields of one contract's values."""

    def __init__(self, contract: str, paths: list[tuple[str, ...]], aead: Any | None) -> None:
        self.contract = contract
        self.paths = paths
        self._aead = aead
        self._data = {p: f"{contract}.{'.'.join(p)}".encode() for p in paths}

    def seal(self, value: Any) -> Any:
        """``value`` with every sensitive field encrypted (a copy; fields already
        encrypted are left as they are)."""
        if not isinstance(value, dict):
            return value
        return self._walk(value, (), self._seal_one)

    def open(self, value: Any) -> Any:
        """``value`` with every sensitive field decrypted, when this process has the key
        (unchanged otherwise)."""
        if self._aead is None or not isinstance(value, dict):
            return value
        return self._walk(value, (), self._open_one)

    def _walk(self, value: dict[str, Any], prefix: tuple[str, ...], one: Any) -> dict[str, Any]:
        """A copy of ``value`` (the record at ``prefix``) with ``one`` applied to each
        sensitive field in it; each nested record is walked once."""
        out = dict(value)
        nested: set[str] = set()
        for path in self.paths:
            if path[: len(prefix)] != prefix:
                continue
            name = path[len(prefix)]
            if len(path) > len(prefix) + 1:
                nested.add(name)
            elif out.get(name) is not None:
                out[name] = one(path, out[name])
        for name in nested:
            if isinstance(out.get(name), dict):
                out[name] = self._walk(out[name], (*prefix, name), one)
        return out

    def _seal_one(self, path: tuple[str, ...], plain: Any) -> Any:
        if self._sealed_already(path, plain):
            return plain
        if self._aead is None:
            raise ContractError(
                f"field {'.'.join(path)} is tagged {PII} and no keyset is configured to "
                "encrypt it (STREAMKIT_KEYSET)",
                schema=self.contract,
            )
        if isinstance(plain, str):
            sealed = self._aead.encrypt(plain.encode(), self._data[path])
            return _MARK + base64.b64encode(sealed).decode()
        if isinstance(plain, bytes):
            return _MARK_BYTES + self._aead.encrypt(plain, self._data[path])
        return plain  # the contract refuses it on encoding, naming the field

    def _sealed_already(self, path: tuple[str, ...], value: Any) -> bool:
        """Whether ``value`` is this field's ciphertext: marked, and (where this process
        has the key) decrypting; a plaintext that merely starts with the mark is not."""
        marked = (isinstance(value, str) and value.startswith(_MARK)) or (
            isinstance(value, bytes) and value.startswith(_MARK_BYTES)
        )
        if not marked or self._aead is None:
            return marked
        try:
            self._open_one(path, value)
        except SerializationError:
            return False
        return True

    def _open_one(self, path: tuple[str, ...], sealed: Any) -> Any:
        try:
            if isinstance(sealed, str) and sealed.startswith(_MARK):
                data = base64.b64decode(sealed[len(_MARK) :], validate=True)
                return self._aead.decrypt(data, self._data[path]).decode()  # type: ignore[union-attr]
            if isinstance(sealed, bytes) and sealed.startswith(_MARK_BYTES):
                return self._aead.decrypt(sealed[len(_MARK_BYTES) :], self._data[path])  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - Tink's, base64's or a UTF-8 error
            raise SerializationError(
                f"field {'.'.join(path)} does not decrypt with the configured keyset "
                f"({type(exc).__name__})",
                schema=self.contract,
            ) from None
        return sealed  # written before the field was tagged: plaintext


def load_aead(keyset: str, kms_uri: str = "") -> Any | None:
    """The AEAD primitive of the keyset file ``keyset`` (None when no keyset is named);
    with ``kms_uri``, the file is encrypted with that KMS key."""
    if not keyset:
        return None
    tink, aead, secret_key_access = _tink()
    try:
        text = Path(keyset).read_text()
    except OSError as exc:
        raise ConfigError(f"STREAMKIT_KEYSET: cannot read {keyset}: {exc.strerror}") from None
    try:
        if kms_uri:
            master = tink.kms_client_from_uri(kms_uri).get_aead(kms_uri)
            handle = tink.json_proto_keyset_format.parse_encrypted(text, master, b"")
        else:
            handle = tink.json_proto_keyset_format.parse(text, secret_key_access.TOKEN)
        return handle.primitive(aead.Aead)
    except tink.TinkError as exc:
        via = f" with the KMS key {kms_uri}" if kms_uri else ""
        raise ConfigError(
            f"STREAMKIT_KEYSET: {keyset} is not a usable keyset{via}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from None


def create_keyset(path: Path) -> None:
    """Write a new cleartext AES-256-GCM keyset to ``path`` (mode 0600; development)."""
    if path.exists():
        raise ConfigError(f"{path} exists: rotate it instead (streamkit keyset rotate)")
    _write(path, _serialize(_new_handle()))


def rotate_keyset(path: Path) -> int:
    """Add a new key to the cleartext keyset at ``path`` and make it the primary one (the
    older keys stay, to decrypt what they encrypted); the new key's id."""
    tink, _, secret_key_access = _tink()
    current = orjson.loads(Path(path).read_bytes())
    tink.json_proto_keyset_format.parse(orjson.dumps(current).decode(), secret_key_access.TOKEN)
    ids = {key["keyId"] for key in current["key"]}
    while True:
        added = orjson.loads(_serialize(_new_handle()))
        if added["primaryKeyId"] not in ids:
            break
    current["key"].extend(added["key"])
    current["primaryKeyId"] = added["primaryKeyId"]
    _write(path, orjson.dumps(current).decode())
    return int(added["primaryKeyId"])


def _tink() -> tuple[Any, Any, Any]:
    try:
        import tink  # noqa: PLC0415 - optional extra
        from tink import aead, secret_key_access  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("encrypted fields need: pip install 'streamkit[encryption]'") from exc
    aead.register()
    return tink, aead, secret_key_access


def _new_handle() -> Any:
    tink, aead, _ = _tink()
    return tink.new_keyset_handle(getattr(aead.aead_key_templates, _TEMPLATE))


def _serialize(handle: Any) -> str:
    tink, _, secret_key_access = _tink()
    return str(tink.json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.touch(0o600)
    tmp.write_text(text)
    tmp.replace(path)


class SealedSerde:
    """An Avro serde whose contract has sensitive fields: they are sealed before encoding
    and opened after decoding (see :class:`FieldCipher`)."""

    def __init__(self, inner: Any, cipher: FieldCipher) -> None:
        self.inner = inner
        self.cipher = cipher
        self.contract = inner.contract
        self.name = f"{inner.name}+sealed"

    def encode(self, value: Any) -> bytes:
        """``value`` with its sensitive fields encrypted, then encoded."""
        return bytes(self.inner.encode(self.cipher.seal(value)))

    def decode(self, data: bytes) -> Any:
        """Decoded, with its sensitive fields decrypted where this process has the key."""
        return self.cipher.open(self.inner.decode(data))


def sealed(serde: Any, keyset: Callable[[], Any | None]) -> Any:
    """``serde`` itself, or sealing its contract's sensitive fields when it has some, with
    the AEAD ``keyset()`` loads (only then)."""
    contract = getattr(serde, "contract", None)
    if contract is None:
        return serde
    paths = sensitive_fields(contract.schema_json, contract.name)
    if not paths:
        return serde
    return SealedSerde(serde, FieldCipher(contract.name, paths, keyset()))
