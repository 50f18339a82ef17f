-- 004_acme_replaces.sql: RFC 9773 §5 - a newOrder's "replaces" names one of
-- the account's certificates, and a certificate has at most one replacement
-- order that is not invalid.
--
-- acme_orders.replaces keeps the certID text the client sent (the order
-- object shows it back). replaces_certificate_id is the order's CLAIM on that
-- certificate, set only once newOrder checked the certID (one of our
-- certificates, issued to an order of the same account, sharing an
-- identifier with the new order). The unique index below lets one order hold
-- the claim: of two newOrders replacing one certificate at the same time,
-- one is stored and the other is answered alreadyReplaced (409).
--
-- An order stops blocking a replacement once it is invalid - stored so
-- (declined, deactivated, refused at finalize), or read so: expired before
-- it was finalized, an authorization failed (RFC 9773: "a different order
-- that is not invalid"; an order past its expiry without a certificate is
-- invalid by RFC 8555 7.1.6, whatever its stored status says). The index
-- cannot say that (it depends on now()), and it does not name status at all:
-- a column in an index predicate is an indexed column, and every status
-- change (the finalize trigger of migration 003 among them) would stop being
-- a heap-only update. Instead the replacing INSERT releases, in the same
-- statement, the claim of an order of that certificate that reads invalid
-- (core/store_acme.c, store_acme_order_create()).
--
-- Orders stored before this migration carry "replaces" unchecked and claim
-- nothing.
ALTER TABLE acme_orders ADD COLUMN replaces_certificate_id bigint REFERENCES certificates(id);

CREATE UNIQUE INDEX acme_orders_replaces_idx ON acme_orders (replaces_certificate_id)
    WHERE replaces_certificate_id IS NOT NULL;
