/*
 * ra_sql.h: the SQL of the row a retried request finds under its
 * idempotency key, as an expression, so that a door may read it inside a
 * statement it runs anyway and hand the text to ra_enroll()
 * (enroll_request.existing_json). The policy facts themselves are no longer
 * SQL: they come from the per-process cache of core/facts.h, kept coherent
 * by the generation of migration 007 (FACTS_GENERATION_SQL).
 */
#ifndef ENROLLD_RA_SQL_H
#define ENROLLD_RA_SQL_H

#include "store_certs.h"

/* clang-format off */
/* The facts of a row found by idempotency key. */
#define RA_EXISTING_JSON(c) \
	"json_build_object(" \
	"'id', " c ".id, " \
	"'status', " c ".status, " \
	"'serial', " c ".serial, " \
	"'cert_der', encode(" c ".cert_der, 'hex'), " \
	"'decline_reason', " c ".decline_reason, " \
	"'json', " STORE_CERT_JSON(c) ")"

/* clang-format on */

#endif
