"""`make demo-cdc` in short: the catalog and the outbox's reservations follow PostgreSQL
(its own PostgreSQL and Kafka Connect, on the test broker)."""

from tests.integration.helpers import run_demo


def test_the_cdc_demo_keeps_the_catalog_equal_to_the_table(
    kafka_bootstrap: str, postgres: object
) -> None:
    # (the postgres fixture: this machine can run PostgreSQL, or the test is skipped locally)
    out = run_demo("processors.demo_cdc", kafka_bootstrap)
    assert "  catalog:      1 kettle (stock 9); 2 mug (stock 100)" in out
    assert "  invalidated:  product:1 (update), product:3 (delete)" in out
    assert "  reservations: o-1 (kettle x2)" in out
    assert "the catalog equals the products table: yes" in out
    assert "reservations: ['o-1'] (o-2 was rolled back: no event)" in out
