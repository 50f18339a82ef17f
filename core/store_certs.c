/*
 * store_certs.c: reading certificate rows for the admin API.
 *
 * Each function is one round trip. PostgreSQL builds the JSON
 * (STORE_CERT_JSON) and jansson parses it once; the scope facts (org,
 * department, profile cert type, requester) come back as plain columns so the
 * admin routes can apply admin_scope_covers() before showing anything.
 */
#include "store_certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "types.h"

/* ---------- prepared statements ---------- */

static const char *const store_cert_stmt_names[STORE_CERT_STMT__MAX] = {
    "enrolld_cert_facts",
    "enrolld_cert_insert",
    "enrolld_cert_insert_id",
    "enrolld_cert_get",
    "enrolld_cert_profile_type",
};

PGresult *store_cert_exec(struct db *db, enum store_cert_stmt stmt, const char *sql, int nparams,
                          const char *const *params)
{
	return db_exec_prepared(db, store_cert_stmt_names[stmt], sql, nparams, params);
}

PGresult *store_cert_exec_formats(struct db *db, enum store_cert_stmt stmt, const char *sql,
                                  int nparams, const char *const *params, const int *lengths,
                                  const int *formats)
{
	return db_exec_prepared_formats(db, store_cert_stmt_names[stmt], sql, nparams, params,
	                                lengths, formats);
}

/* ---------- reads for the admin API ---------- */

void store_cert_row_free(struct store_cert_row *row)
{
	if (row == NULL)
		return;
	json_decref(row->json);
	free(row->cert_der);
	memset(row, 0, sizeof(*row));
}

/* Decodes PostgreSQL's hex bytea text ("\x0a1b..." or bare hex) into a newly
 * allocated buffer; NULL on malformed input. */
static unsigned char *store_hex_decode(const char *text, size_t *len)
{
	unsigned char *out = NULL;
	size_t n, i;

	if (text[0] == '\\' && text[1] == 'x')
		text += 2;
	n = strlen(text);
	if (n % 2 != 0)
		return NULL;
	out = malloc(n / 2 + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < n / 2; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = text[2 * i + k];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else {
				free(out);
				return NULL;
			}
		}
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return out;
}

int store_cert_get(struct db *db, int64_t id, bool want_der, struct store_cert_row *out)
{
	/* clang-format off */
	static const char sql[] =
	    "SELECT c.status, c.org_id, coalesce(c.dept_id, 0), p.cert_type,"
	    " coalesce(c.requester_admin_id, 0), " STORE_CERT_JSON("c") ","
	    " CASE WHEN $2::boolean THEN encode(c.cert_der, 'hex') END"
	    " FROM certificates c JOIN profiles p ON p.id = c.profile_id WHERE c.id = $1";
	/* clang-format on */
	char idbuf[24];
	const char *params[2];
	PGresult *res = NULL;
	json_error_t jerr;
	int rc = -1, type;

	memset(out, 0, sizeof(*out));
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	params[0] = idbuf;
	params[1] = want_der ? "true" : "false";
	res = store_cert_exec(db, STORE_CERT_STMT_GET, sql, 2, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 0;
		goto out;
	}
	out->id = id;
	out->status = cert_status_parse(PQgetvalue(res, 0, 0));
	out->org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	out->dept_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	type = cert_type_parse(PQgetvalue(res, 0, 3));
	out->cert_type = type > 0 ? (unsigned)type : 0;
	out->requester_admin_id = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	out->json = json_loads(PQgetvalue(res, 0, 5), 0, &jerr);
	if (out->json == NULL) {
		log_warnx("json_loads(cert_get): %s", jerr.text);
		goto out;
	}
	if (want_der && !PQgetisnull(res, 0, 6)) {
		out->cert_der = store_hex_decode(PQgetvalue(res, 0, 6), &out->cert_der_len);
		if (out->cert_der == NULL) {
			log_warnx("store_hex_decode(cert_get): malformed bytea");
			goto out;
		}
	}
	rc = 1;
out:
	if (rc < 0)
		store_cert_row_free(out);
	PQclear(res);
	return rc;
}

/* "{ssl,client}" for the cert_type bits, into buf. */
static void store_cert_types_literal(unsigned bits, char *buf, size_t len)
{
	static const unsigned all[] = {CERT_TYPE_SSL, CERT_TYPE_CLIENT, CERT_TYPE_CODE_SIGNING,
	                               CERT_TYPE_DEVICE};
	size_t used = 0;

	used += (size_t)snprintf(buf + used, len - used, "{");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && used < len; i++) {
		if ((bits & all[i]) == 0)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used > 1 ? "," : "",
		                         cert_type_name((enum cert_type)all[i]));
	}
	if (used < len)
		snprintf(buf + used, len - used, "}");
}

int store_cert_list(struct db *db, const struct store_cert_filter *f, json_t **items)
{
	/* clang-format off */
	static const char sql[] =
	    "SELECT coalesce(json_agg(s.j ORDER BY s.id), '[]') FROM ("
	    " SELECT c.id, " STORE_CERT_JSON("c") " AS j"
	    " FROM certificates c JOIN profiles p ON p.id = c.profile_id"
	    " WHERE ($1::text IS NULL OR c.status = $1)"
	    " AND ($2::bigint IS NULL OR c.org_id = $2)"
	    " AND ($3::bigint IS NULL OR c.dept_id = $3)"
	    " AND ($4::bigint IS NULL OR c.profile_id = $4)"
	    " AND ($5::timestamptz IS NULL OR c.not_after < $5)"
	    " AND c.id > $6::bigint"
	    " AND ($7::bigint IS NULL OR c.org_id = $7)"
	    " AND ($8::bigint IS NULL OR c.dept_id = $8)"
	    " AND ($9::text[] IS NULL OR p.cert_type = ANY ($9))"
	    " ORDER BY c.id LIMIT $10::int) s";
	/* clang-format on */
	char org[24], dept[24], profile[24], after[24], scope_org[24], scope_dept[24], limit[16];
	char types[64];
	const char *params[10];
	PGresult *res = NULL;
	json_t *arr = NULL;
	json_error_t jerr;
	int rc = -1;

	*items = NULL;
	snprintf(org, sizeof(org), "%lld", (long long)f->org_id);
	snprintf(dept, sizeof(dept), "%lld", (long long)f->dept_id);
	snprintf(profile, sizeof(profile), "%lld", (long long)f->profile_id);
	snprintf(after, sizeof(after), "%lld", (long long)(f->after > 0 ? f->after : 0));
	snprintf(scope_org, sizeof(scope_org), "%lld", (long long)f->scope_org_id);
	snprintf(scope_dept, sizeof(scope_dept), "%lld", (long long)f->scope_dept_id);
	/* one more than asked, to learn whether there is a next page */
	snprintf(limit, sizeof(limit), "%d", f->limit + 1);
	store_cert_types_literal(f->scope_cert_types, types, sizeof(types));
	params[0] = f->status;
	params[1] = f->org_id > 0 ? org : NULL;
	params[2] = f->dept_id > 0 ? dept : NULL;
	params[3] = f->profile_id > 0 ? profile : NULL;
	params[4] = f->expiring_before;
	params[5] = after;
	params[6] = f->scope_org_id > 0 ? scope_org : NULL;
	params[7] = f->scope_dept_id > 0 ? scope_dept : NULL;
	params[8] = f->scope_cert_types != 0 ? types : NULL;
	params[9] = limit;
	res = db_exec(db, "cert_list", sql, 10, params);
	if (res == NULL || PQntuples(res) != 1)
		goto out;
	arr = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
	if (arr == NULL || !json_is_array(arr)) {
		log_warnx("json_loads(cert_list): %s", arr == NULL ? jerr.text : "not an array");
		goto out;
	}
	*items = arr;
	arr = NULL;
	rc = 0;
out:
	json_decref(arr);
	PQclear(res);
	return rc;
}

int store_cert_profile_type(struct db *db, int64_t profile_id, unsigned *cert_type)
{
	char idbuf[24];
	const char *params[1];
	PGresult *res = NULL;
	int rc = -1, t;

	*cert_type = 0;
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)profile_id);
	params[0] = idbuf;
	res = store_cert_exec(db, STORE_CERT_STMT_PROFILE_TYPE,
	                      "SELECT cert_type FROM profiles WHERE id = $1::bigint", 1, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 0;
		goto out;
	}
	t = cert_type_parse(PQgetvalue(res, 0, 0));
	if (t <= 0) {
		log_warnx("cert_type_parse(cert_profile_type): unknown type");
		goto out;
	}
	*cert_type = (unsigned)t;
	rc = 1;
out:
	PQclear(res);
	return rc;
}
