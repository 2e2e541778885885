"""The SQLite state store: domains, transactions, runtime records, events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from virtkit.daemon.store import Store
from virtkit.errors import ConfigError, HostError

U1 = "00000000-0000-4000-8000-000000000001"
U2 = "00000000-0000-4000-8000-000000000002"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "virtkit.db")
    yield s
    s.close()


def test_insert_and_load(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web", "memory_mib": 1024})
    [d] = store.load_domains()
    assert (d.name, d.uuid, d.config, d.autostart) == (
        "web",
        U1,
        {"name": "web", "memory_mib": 1024},
        False,
    )


def test_duplicate_name_is_a_config_error(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web"})
    with pytest.raises(ConfigError, match=r"'web'.*already exists"):
        store.insert_domain("web", U2, {"name": "web"})
    assert [d.uuid for d in store.load_domains()] == [U1]


def test_duplicate_uuid_is_a_config_error(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web"})
    with pytest.raises(ConfigError, match=U1):
        store.insert_domain("db", U1, {"name": "db"})


def test_update_autostart_delete(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web"})
    store.update_domain("web", {"name": "web", "vcpus": 2})
    store.set_autostart("web", True)
    [d] = store.load_domains()
    assert d.config == {"name": "web", "vcpus": 2}
    assert d.autostart is True
    store.drop_runtime("web", "shut off", "destroyed")
    store.delete_domain("web")
    assert store.load_domains() == []
    assert store.load_states() == {}


def test_tx_rollback_keeps_old_data(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web", "vcpus": 1})
    with pytest.raises(RuntimeError, match="midway"), store.tx() as db:
        db.execute("UPDATE domains SET config='{}' WHERE name='web'")
        db.execute("DELETE FROM domains")
        raise RuntimeError("midway")
    [d] = store.load_domains()
    assert d.config == {"name": "web", "vcpus": 1}
    # The store is usable after a rollback.
    store.insert_domain("db", U2, {"name": "db"})
    assert sorted(d.name for d in store.load_domains()) == ["db", "web"]


def test_failed_insert_inside_tx_rolls_back_everything(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web"})
    with pytest.raises(ConfigError):
        store.insert_domain("web", U2, {})
    store.set_autostart("web", True)
    assert store.load_domains()[0].autostart is True


def test_data_survives_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "v.db")
    s.insert_domain("web", U1, {"name": "web"})
    s.put_runtime("web", '{"pid": 42}', "running", "booted")
    s.close()
    s = Store(tmp_path / "v.db")
    try:
        assert [d.name for d in s.load_domains()] == ["web"]
        assert s.load_runtime() == {"web": '{"pid": 42}'}
        assert s.load_states() == {"web": ("running", "booted")}
    finally:
        s.close()


def test_runtime_records_and_states(store: Store) -> None:
    store.insert_domain("web", U1, {"name": "web"})
    assert store.load_runtime() == {}
    store.put_runtime("web", '{"pid": 1}', "running", "booted")
    store.put_runtime("web", '{"pid": 2}', "paused", "user")
    assert store.load_runtime() == {"web": '{"pid": 2}'}
    assert store.load_states() == {"web": ("paused", "user")}
    store.drop_runtime("web", "shut off", "crashed")
    assert store.load_runtime() == {}
    assert store.load_states() == {"web": ("shut off", "crashed")}


def test_next_id_increases(store: Store) -> None:
    assert [store.next_id() for _ in range(3)] == [1, 2, 3]


def test_event_sequence_numbers(store: Store) -> None:
    seqs = [store.add_event("web", "started", f"n{i}", ts=100.0 + i) for i in range(5)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    events = store.events()
    assert [e.seq for e in events] == seqs
    assert [e.detail for e in events] == ["n0", "n1", "n2", "n3", "n4"]
    assert events[0].ts == 100.0
    assert events[0].domain == "web"
    assert events[0].type == "started"


def test_events_after(store: Store) -> None:
    seqs = [store.add_event("web" if i % 2 else "db", "x", str(i), ts=0.0) for i in range(6)]
    assert [e.seq for e in store.events(after=seqs[2])] == seqs[3:]
    assert store.events(after=seqs[-1]) == []
    assert [e.detail for e in store.events(domain="web")] == ["1", "3", "5"]
    assert [e.detail for e in store.events(after=seqs[1], domain="web")] == ["3", "5"]
    assert [e.seq for e in store.events(limit=2)] == seqs[:2]


def test_sequence_numbers_never_reused_after_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "v.db")
    last = s.add_event("web", "x", "", ts=0.0)
    s.close()
    s = Store(tmp_path / "v.db")
    try:
        assert s.add_event("web", "x", "", ts=0.0) > last
    finally:
        s.close()


def test_unopenable_database_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="cannot open the state database"):
        Store(tmp_path / "missing-dir" / "virtkit.db")
