-- 003_acme_order_follows_certificate.sql: a finalized ACME order takes its
-- state from its certificate row (idempotency key 'acme-order:<order id>',
-- written by ra_enroll()), in the same transaction as every change of that
-- row: the INSERT of finalize (issued -> valid, held -> processing) and an
-- administrator's decision on a held request (approved and issued -> valid,
-- declined -> invalid with the reason as the order's error).
--
-- Before this, finalize committed the certificate and then updated the order
-- in a second statement, and every read of an order first "settled" it
-- against its certificate row (an UPDATE inside each order read). Now an
-- order is never behind its certificate, and reading one writes nothing.
--
-- Only the ACME door writes keys starting 'acme-order:' (always followed by
-- the order's id); the admin API namespaces its Idempotency-Key values as
-- 'admin:<admin id>:<key>', so no other request can name an ACME order.
CREATE FUNCTION acme_order_follow_certificate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'declined' THEN
        -- the problem document the order shows (RFC 8555 7.1.3 "error")
        UPDATE acme_orders
           SET status = 'invalid',
               certificate_id = NEW.id,
               error = jsonb_build_object(
                   'type', 'urn:ietf:params:acme:error:unauthorized',
                   'status', 403,
                   'reason', 'request_declined',
                   'detail', 'the certificate request was declined by an administrator'
                             || coalesce(': ' || nullif(NEW.decline_reason, ''), ''))
         WHERE id = substr(NEW.idempotency_key, 12)::bigint
           AND status IN ('pending', 'ready', 'processing');
    ELSE
        UPDATE acme_orders
           SET status = CASE WHEN NEW.status = 'issued' THEN 'valid' ELSE 'processing' END,
               certificate_id = NEW.id
         WHERE id = substr(NEW.idempotency_key, 12)::bigint
           AND status IN ('pending', 'ready', 'processing');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER acme_order_follow_certificate
    AFTER INSERT ON certificates
    FOR EACH ROW
    WHEN (NEW.idempotency_key LIKE 'acme-order:%'
          AND NEW.status IN ('issued', 'requested', 'approved'))
    EXECUTE FUNCTION acme_order_follow_certificate();

-- Revocation and expiry leave the order as it is ('valid': RFC 8555 orders
-- describe issuance, not the certificate's later life).
CREATE TRIGGER acme_order_follow_certificate_decision
    AFTER UPDATE OF status ON certificates
    FOR EACH ROW
    WHEN (NEW.idempotency_key LIKE 'acme-order:%'
          AND OLD.status IN ('requested', 'approved')
          AND NEW.status IN ('approved', 'issued', 'declined'))
    EXECUTE FUNCTION acme_order_follow_certificate();

-- Orders finalized before this migration, whose own update was lost or whose
-- held request was decided since: settled once, here.
UPDATE acme_orders o
   SET status = CASE WHEN c.status = 'declined' THEN 'invalid'
                     WHEN c.status IN ('requested', 'approved') THEN 'processing'
                     ELSE 'valid' END,
       certificate_id = c.id,
       error = CASE WHEN c.status = 'declined' THEN jsonb_build_object(
                   'type', 'urn:ietf:params:acme:error:unauthorized',
                   'status', 403,
                   'reason', 'request_declined',
                   'detail', 'the certificate request was declined by an administrator'
                             || coalesce(': ' || nullif(c.decline_reason, ''), ''))
               ELSE o.error END
  FROM certificates c
 WHERE c.idempotency_key = 'acme-order:' || o.id
   AND o.status IN ('pending', 'ready', 'processing');

-- The trigger's UPDATE changes no indexed column, so PostgreSQL can make it
-- a heap-only (HOT) update: no new index entries, and room for it on the
-- order's own page (fillfactor). An order's certificate is found by the
-- certificate's idempotency key (revokeCert's ownership check), so the
-- partial index on certificate_id has no reader left.
DROP INDEX acme_orders_certificate_idx;
ALTER TABLE acme_orders SET (fillfactor = 90);
