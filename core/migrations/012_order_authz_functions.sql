-- 012_order_authz_functions.sql: an order's authorizations are read through
-- two functions, so that the statements reading an order (core/store_acme.c,
-- SA_ORDER_COLS: finalize, order POST-as-GET) pay for acme_authzs only when
-- the order has authorization rows.
--
-- Those statements computed the status an order reads as (a pending order
-- is invalid when an authorization failed, ready when all are valid) and the
-- list of its authorizations with three correlated subqueries on
-- acme_authzs. PostgreSQL initializes the plan of every subquery of a
-- statement at each execution, whether or not the row needs it: scans and
-- an aggregate, relation and index opened and locked. An order whose
-- authorizations are derived (migration 009: no rows, the common case once
-- a domain is validated) never needs them. A function call in a CASE branch
-- costs nothing when the branch is not taken; when it is, plpgsql runs the
-- same queries with plans cached for the session.
--
-- Same results: evaluated in the calling statement's snapshot (STABLE), the
-- same conditions as the subqueries they replace. Order rows are not read
-- or changed here.
--
-- Measured (callgrind, one backend, generic plan, prepared statement of
-- finalize, order with derived authorizations): 492k -> 409k instructions
-- per execution.

-- The verdict of the authorizations of an order that is pending: 'invalid'
-- when one failed (invalid, deactivated, expired, revoked, or pending past
-- its expiry), 'ready' when all are valid (or there are none), else
-- 'pending'.
CREATE FUNCTION acme_order_authz_status(the_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM acme_authzs z WHERE z.order_id = the_order
               AND (z.status IN ('invalid', 'deactivated', 'expired', 'revoked')
                    OR (z.status = 'pending' AND z.expires_at <= now()))) THEN
        RETURN 'invalid';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM acme_authzs z WHERE z.order_id = the_order
                   AND z.status <> 'valid') THEN
        RETURN 'ready';
    END IF;
    RETURN 'pending';
END
$$;

-- The public ids of the order's authorizations, comma-separated in id
-- order ('' for none).
CREATE FUNCTION acme_order_authz_ids(the_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT string_agg(z.public_id, ',' ORDER BY z.id) FROM acme_authzs z
                     WHERE z.order_id = the_order), '');
END
$$;
