import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.name_based_ids import uuid5_text


@given(namespace=st.uuids(), name=st.text(), upper=st.booleans())
def test_is_uuid5_of_the_same_namespace_and_name(namespace: uuid.UUID, name: str, upper: bool):
    text = str(namespace).upper() if upper else str(namespace)
    assert uuid5_text(text, name) == str(uuid.uuid5(namespace, name))


@pytest.mark.parametrize(
    "namespace",
    [
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "1234567-81234-5678-1234-567812345678",
        "12345678-1234-5678-1234-56781234567 ",
    ],
)
def test_other_forms_of_a_namespace_are_read_as_uuid_reads_them(namespace: str):
    assert uuid5_text(namespace, "evt") == str(uuid.uuid5(uuid.UUID(namespace), "evt"))


@pytest.mark.parametrize(
    "namespace",
    [
        "",
        "not-a-uuid",
        "1234567g-1234-5678-1234-567812345678",
        "12 45678-1234-5678-1234-567812345678",
    ],
)
def test_a_namespace_uuid_refuses_is_refused(namespace: str):
    with pytest.raises(ValueError):
        uuid.UUID(namespace)
    with pytest.raises(ValueError):
        uuid5_text(namespace, "evt")
