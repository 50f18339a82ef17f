-- 003_acme_order_follows_certificate.sql: a finalized ACME order takes its
-- state from the certificate row ra_enroll() inserts for it (idempotency key
-- 'acme-order:<order id>'), in the same transaction as that INSERT.
--
-- Before this, finalize committed the certificate and then updated the order
-- in a second statement (a second round trip and commit per issuance, and a
-- window where a crash left the order 'ready' beside its certificate, closed
-- later by the settle-on-read in core/store_acme.c). Now the order is never
-- behind its certificate. Approval and decline still reach the order through
-- that settle-on-read (SA_ORDER_SETTLE), which also covers rows written
-- before this migration.
CREATE FUNCTION acme_order_follow_certificate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE acme_orders
       SET status = CASE WHEN NEW.status = 'issued' THEN 'valid' ELSE 'processing' END,
           certificate_id = NEW.id
     WHERE id = substr(NEW.idempotency_key, 12)::bigint
       AND status IN ('pending', 'ready');
    RETURN NULL;
END;
$$;

CREATE TRIGGER acme_order_follow_certificate
    AFTER INSERT ON certificates
    FOR EACH ROW
    WHEN (NEW.idempotency_key LIKE 'acme-order:%'
          AND NEW.status IN ('issued', 'requested', 'approved'))
    EXECUTE FUNCTION acme_order_follow_certificate();

-- The trigger's UPDATE changes no indexed column, so PostgreSQL can make it
-- a heap-only (HOT) update: no new index entries, and room for it on the
-- order's own page (fillfactor). An order's certificate is found by the
-- certificate's idempotency key (revokeCert's ownership check), so the
-- partial index on certificate_id has no reader left.
DROP INDEX acme_orders_certificate_idx;
ALTER TABLE acme_orders SET (fillfactor = 90);
