-- The shop database of the CDC example (processors/inventory.py): a products table whose
-- changes Debezium streams, and the transactional outbox the shop writes its events to.
CREATE TABLE IF NOT EXISTS products (
  id       integer PRIMARY KEY,
  name     text    NOT NULL,
  category text    NOT NULL,
  price    numeric(10, 2) NOT NULL,
  stock    integer NOT NULL
);
-- A delete's change then carries the whole row in "before", not only the key.
ALTER TABLE products REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS orders (
  id         text    PRIMARY KEY,
  product_id integer NOT NULL,
  quantity   integer NOT NULL
);

-- Debezium's outbox event router reads these columns (its defaults).
CREATE TABLE IF NOT EXISTS outbox (
  id            uuid  PRIMARY KEY,
  aggregatetype text  NOT NULL,
  aggregateid   text  NOT NULL,
  type          text  NOT NULL,
  payload       jsonb NOT NULL
);
