"""A realistic ERP data set for the sandbox databases.

Rows are generated inside PostgreSQL with generate_series, so a 1 GiB data set
costs one round trip per table, not a Python loop. Figures follow Bangladesh
practice, as Vextrus does: BDT amounts and 15% VAT.
"""

from __future__ import annotations

from collections.abc import Iterator

# Rows per table at scale 1.0 (a few MB in all); --scale multiplies them.
BASE_ROWS = {
    "tenants": 20,
    "users": 2_000,
    "customers": 5_000,
    "products": 2_000,
    "invoices": 20_000,
    "journal_lines": 60_000,
    "purchase_orders": 8_000,
    "outbox_events": 1_000,
}

VAT_RATE = "0.15"

_COMMON = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO schema_migrations (version) VALUES ('0001_initial'), ('0002_outbox') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS outbox_events (
    id bigserial PRIMARY KEY, tenant_id int NOT NULL, topic text NOT NULL,
    payload jsonb NOT NULL, created_at timestamptz NOT NULL, published boolean NOT NULL);
INSERT INTO outbox_events (tenant_id, topic, payload, created_at, published)
SELECT 1 + i % {tenants}, 'vextrus.{service}.events',
       jsonb_build_object('seq', i, 'kind', (ARRAY['created','updated','deleted'])[1 + i % 3]),
       timestamptz '2026-01-01' + (i || ' minutes')::interval, i % 10 <> 0
FROM generate_series(1::bigint, {outbox_events}) AS i;
"""

_BY_SERVICE = {
    "auth": """
CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL, bin_number text NOT NULL,
                      created_at timestamptz NOT NULL);
INSERT INTO tenants SELECT i, 'Tenant ' || i || ' Construction Ltd',
       lpad((100000000 + i * 7919)::text, 13, '0'), timestamptz '2025-01-01' + (i || ' days')::interval
FROM generate_series(1::bigint, {tenants}) AS i;
CREATE TABLE users (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants,
                    email text NOT NULL UNIQUE, full_name text NOT NULL, role text NOT NULL,
                    password_hash text NOT NULL, active boolean NOT NULL);
INSERT INTO users SELECT i, 1 + i % {tenants}, 'user' || i || '@tenant' || (1 + i % {tenants}) || '.vextrus.bd',
       'User ' || i, (ARRAY['admin','accountant','engineer','viewer'])[1 + i % 4],
       '$argon2id$v=19$' || md5(i::text), i % 17 <> 0
FROM generate_series(1::bigint, {users}) AS i;
""",
    "master-data": """
CREATE TABLE customers (id bigint PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL,
                        tin text NOT NULL, district text NOT NULL, credit_limit numeric(14,2) NOT NULL);
INSERT INTO customers SELECT i, 1 + i % {tenants}, 'Customer ' || i, lpad((i * 104729)::text, 12, '0'),
       (ARRAY['Dhaka','Chattogram','Khulna','Rajshahi','Sylhet','Barishal','Rangpur','Mymensingh'])[1 + i % 8],
       (10000 + (i * 37) % 990000)::numeric
FROM generate_series(1::bigint, {customers}) AS i;
CREATE TABLE products (id bigint PRIMARY KEY, tenant_id int NOT NULL, sku text NOT NULL,
                       name text NOT NULL, unit text NOT NULL, unit_price numeric(14,2) NOT NULL);
INSERT INTO products SELECT i, 1 + i % {tenants}, 'SKU-' || lpad(i::text, 6, '0'),
       (ARRAY['Cement 50kg','Rod 12mm','Brick','Sand cft','Stone chips cft','Tiles sqft'])[1 + i % 6] || ' #' || i,
       (ARRAY['bag','ton','pcs','cft','cft','sqft'])[1 + i % 6], (50 + (i * 13) % 5000)::numeric
FROM generate_series(1::bigint, {products}) AS i;
""",
    "finance": """
CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id int NOT NULL, customer_id bigint NOT NULL,
                       number text NOT NULL, issued_on date NOT NULL, net_amount numeric(14,2) NOT NULL,
                       vat_rate numeric(4,2) NOT NULL, vat_amount numeric(14,2) NOT NULL,
                       gross_amount numeric(14,2) NOT NULL, status text NOT NULL, currency char(3) NOT NULL);
INSERT INTO invoices
SELECT i, 1 + i % {tenants}, 1 + i % {customers}, 'INV-2026-' || lpad(i::text, 8, '0'),
       date '2026-01-01' + (i % 320)::int, net, {vat}, round(net * {vat}, 2), net + round(net * {vat}, 2),
       (ARRAY['draft','issued','paid','overdue'])[1 + i % 4], 'BDT'
FROM (SELECT i, (1000 + (i * 7919) % 500000)::numeric(14,2) AS net
      FROM generate_series(1::bigint, {invoices}) AS i) AS s;
CREATE TABLE journal_lines (id bigint PRIMARY KEY, tenant_id int NOT NULL, invoice_id bigint NOT NULL,
                            entry_date date NOT NULL, account text NOT NULL,
                            debit numeric(14,2) NOT NULL, credit numeric(14,2) NOT NULL);
-- Each invoice posts three balanced lines: receivable, revenue and VAT payable.
INSERT INTO journal_lines
SELECT n, inv.tenant_id, inv.id, inv.issued_on,
       (ARRAY['1100 Accounts Receivable','4000 Revenue','2200 VAT Payable'])[1 + (n - 1) % 3],
       CASE (n - 1) % 3 WHEN 0 THEN inv.gross_amount ELSE 0 END,
       CASE (n - 1) % 3 WHEN 1 THEN inv.net_amount WHEN 2 THEN inv.vat_amount ELSE 0 END
FROM generate_series(1::bigint, {journal_lines}) AS n
JOIN invoices AS inv ON inv.id = 1 + ((n - 1) / 3) % {invoices};
CREATE INDEX ON journal_lines (invoice_id);
""",
    "scm": """
CREATE TABLE purchase_orders (id bigint PRIMARY KEY, tenant_id int NOT NULL, vendor text NOT NULL,
                              number text NOT NULL, ordered_on date NOT NULL, amount numeric(14,2) NOT NULL,
                              vat_amount numeric(14,2) NOT NULL, status text NOT NULL);
INSERT INTO purchase_orders SELECT i, 1 + i % {tenants}, 'Vendor ' || (1 + i % 300),
       'PO-2026-' || lpad(i::text, 7, '0'), date '2026-01-01' + (i % 320)::int, amt, round(amt * {vat}, 2),
       (ARRAY['requested','approved','received','closed'])[1 + i % 4]
FROM (SELECT i, (5000 + (i * 104729) % 2000000)::numeric(14,2) AS amt
      FROM generate_series(1::bigint, {purchase_orders}) AS i) AS s;
""",
}


def rows_at(scale: float) -> dict[str, int]:
    return {table: max(1, int(count * scale)) for table, count in BASE_ROWS.items()}


def seed_statements(service: str, scale: float) -> Iterator[str]:
    """SQL that creates and fills a service's database at the given scale."""
    values = {**rows_at(scale), "service": service, "vat": VAT_RATE}
    yield _COMMON.format(**values)
    if service in _BY_SERVICE:
        yield _BY_SERVICE[service].format(**values)
