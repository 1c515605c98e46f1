"""Field-level encryption of contract fields tagged PII: sealed on encoding, opened only
with the keyset, bound to their field, through key rotation and a KMS-encrypted keyset."""

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
import tink
from tink import aead, secret_key_access
from tink.testing import fake_kms

from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.contracts.encryption import (
    create_keyset,
    load_aead,
    rotate_keyset,
    sealed,
    sensitive_fields,
)
from streamkit.errors import ConfigError, ContractError, SerializationError

CUSTOMER = {
    "type": "record",
    "name": "Customer",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "email", "type": "string", "confluent:tags": ["PII"]},
        {"name": "phone", "type": ["null", "string"], "default": None, "confluent:tags": ["PII"]},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "city", "type": "string"},
                    {"name": "street", "type": "bytes", "confluent:tags": ["PII"]},
                    {"name": "postcode", "type": "string", "confluent:tags": ["PII"]},
                ],
            },
        },
    ],
}
VALUE = {
    "id": "c-1",
    "email": "ada@example.org",
    "phone": None,
    "address": {"city": "Berlin", "street": b"Unter den Linden 1", "postcode": "10117"},
}


def _repository(tmp_path: Path, schema: Any = CUSTOMER) -> SchemaRepository:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "Customer.avsc").write_bytes(orjson.dumps(schema))
    return SchemaRepository.from_directory(tmp_path / "schemas")


@pytest.fixture
def keyset(tmp_path: Path) -> Path:
    """A new development keyset."""
    path = tmp_path / "keyset.json"
    create_keyset(path)
    return path


def _serde(tmp_path: Path, keyset: Path | None) -> Any:
    avro = AvroSerde(_repository(tmp_path), "t.Customer")
    return sealed(avro, lambda: load_aead(str(keyset) if keyset else ""))


def test_tagged_fields_are_found_nested_and_a_tagged_long_is_refused(tmp_path: Path) -> None:
    contract = _repository(tmp_path).get("t.Customer")
    assert sensitive_fields(contract.schema_json, contract.name) == [
        ("email",),
        ("phone",),
        ("address", "street"),
        ("address", "postcode"),
    ]
    bad = {**CUSTOMER, "fields": [{"name": "age", "type": "long", "confluent:tags": ["PII"]}]}
    with pytest.raises(ContractError, match="field age is tagged PII but is long"):
        sensitive_fields(orjson.dumps(bad).decode(), "t.Customer")


def test_sealed_fields_are_unreadable_in_the_bytes_and_readable_with_the_key(
    tmp_path: Path, keyset: Path
) -> None:
    assert keyset.stat().st_mode & 0o777 == 0o600
    with_key, without_key = _serde(tmp_path, keyset), _serde(tmp_path, None)
    data = with_key.encode(VALUE)
    assert b"ada@example.org" not in data
    assert b"Unter den Linden" not in data
    assert b"10117" not in data
    assert b"Berlin" in data  # untagged fields stay as they are
    assert with_key.decode(data) == VALUE
    seen = without_key.decode(data)
    assert seen["email"].startswith("enc1:")
    assert seen["address"]["street"].startswith(b"enc1:")
    assert seen["address"]["postcode"].startswith("enc1:")
    assert seen["id"] == "c-1"
    assert seen["phone"] is None
    # Without the key: ciphertext is forwarded as it is, plaintext is refused.
    assert with_key.decode(without_key.encode(seen)) == VALUE
    with pytest.raises(ContractError, match="field email is tagged PII and no keyset"):
        without_key.encode(VALUE)


def test_a_ciphertext_moved_or_altered_does_not_decrypt_and_names_the_field(
    tmp_path: Path, keyset: Path
) -> None:
    serde = _serde(tmp_path, keyset)
    plain = _serde(tmp_path, None)
    seen = plain.decode(serde.encode({**VALUE, "phone": "+49 30 1234"}))
    swapped = {**seen, "email": seen["phone"], "phone": seen["email"]}
    with pytest.raises(SerializationError, match="field email does not decrypt"):
        serde.decode(plain.encode(swapped))
    raw = bytearray(base64.b64decode(seen["email"][5:]))
    raw[-1] ^= 1
    altered = {**seen, "email": "enc1:" + base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(SerializationError, match="field email does not decrypt"):
        serde.decode(plain.encode(altered))


def test_after_a_rotation_old_values_decrypt_and_new_ones_use_the_new_key(
    tmp_path: Path, keyset: Path
) -> None:
    before = _serde(tmp_path, keyset).encode(VALUE)
    new_id = rotate_keyset(keyset)
    assert len(orjson.loads(keyset.read_bytes())["key"]) == 2
    serde, plain = _serde(tmp_path, keyset), _serde(tmp_path, None)
    assert serde.decode(before) == VALUE
    after = plain.decode(serde.encode(VALUE))
    # Tink's ciphertext starts with 0x01 and the id of the key that made it.
    assert base64.b64decode(after["email"][5:])[1:5] == new_id.to_bytes(4, "big")


def test_a_keyset_encrypted_with_a_kms_key_loads_through_the_registered_client(
    tmp_path: Path,
) -> None:
    aead.register()
    master = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    uri = "fake-kms://" + base64.urlsafe_b64encode(
        tink.proto_keyset_format.serialize(master, secret_key_access.TOKEN)
    ).decode().rstrip("=")
    tink.register_kms_client(fake_kms.FakeKmsClient(uri))
    data_keys = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    path = tmp_path / "keyset.enc.json"
    path.write_text(
        tink.json_proto_keyset_format.serialize_encrypted(
            data_keys, master.primitive(aead.Aead), b""
        )
    )
    primitive = load_aead(str(path), uri)
    assert primitive is not None
    assert primitive.decrypt(primitive.encrypt(b"x", b"ad"), b"ad") == b"x"
    with pytest.raises(ConfigError, match=r"keyset.enc.json is not a usable keyset: \S") as raised:
        load_aead(str(path), "")  # encrypted: not a cleartext keyset
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="is not a usable keyset with the KMS key aws-kms://"):
        load_aead(str(path), "aws-kms://arn:aws:kms:eu-west-1:1:key/none")  # no such client


def test_a_plaintext_that_looks_sealed_is_still_encrypted_where_the_key_is(
    tmp_path: Path, keyset: Path
) -> None:
    serde = _serde(tmp_path, keyset)
    tricky = {**VALUE, "email": "enc1:not-a-ciphertext@example.org"}
    data = serde.encode(tricky)
    assert b"not-a-ciphertext" not in data
    assert serde.decode(data) == tricky
