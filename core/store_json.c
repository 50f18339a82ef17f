/*
 * store_json.c: the few helpers the admin API's store files share (see
 * store_json.h): run a statement, parse the one JSON value PostgreSQL built,
 * format parameters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "store_json.h"
#include "types.h"

int store_json_one(struct db *db, const char *what, const char *sql, int nparams,
                   const char *const *params, json_t **out)
{
	PGresult *res = NULL;
	json_error_t jerr;
	const char *text = NULL;
	int rc = -1;

	*out = NULL;
	res = db_exec(db, what, sql, nparams, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0)) {
		rc = 0;
		goto out;
	}
	text = PQgetvalue(res, 0, 0);
	*out = json_loadb(text, (size_t)PQgetlength(res, 0, 0), JSON_DECODE_ANY, &jerr);
	if (*out == NULL) {
		log_warnx("json_loadb(%s): %s", what, jerr.text);
		goto out;
	}
	rc = 1;
out:
	PQclear(res);
	return rc;
}

int store_json_must(struct db *db, const char *what, const char *sql, int nparams,
                    const char *const *params, json_t **out)
{
	int r;

	r = store_json_one(db, what, sql, nparams, params, out);
	if (r == 0)
		log_warnx("%s: the statement returned no value", what);
	return r == 1 ? 0 : -1;
}

int store_json_exec(struct db *db, const char *what, const char *sql, int nparams,
                    const char *const *params)
{
	PGresult *res = NULL;

	res = db_exec(db, what, sql, nparams, params);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int store_json_id(struct db *db, const char *what, const char *sql, int nparams,
                  const char *const *params, int64_t *id)
{
	PGresult *res = NULL;
	char *end = NULL;
	int rc = -1;

	*id = 0;
	res = db_exec(db, what, sql, nparams, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0)) {
		rc = 0;
		goto out;
	}
	errno = 0;
	*id = strtoll(PQgetvalue(res, 0, 0), &end, 10);
	if (errno != 0 || end == NULL || *end != '\0') {
		log_warnx("strtoll(%s): not an integer", what);
		goto out;
	}
	rc = 1;
out:
	PQclear(res);
	return rc;
}

const char *store_json_int(char buf[24], int64_t v)
{
	if (v == 0)
		return NULL;
	snprintf(buf, 24, "%" PRId64, v);
	return buf;
}

const char *store_json_cert_types(char buf[64], unsigned bits)
{
	size_t used = 0;
	unsigned bit;

	if (bits == 0)
		return NULL;
	buf[used++] = '{';
	for (bit = 1; bit <= CERT_TYPE_DEVICE; bit <<= 1) {
		const char *name = (bits & bit) ? cert_type_name((enum cert_type)bit) : NULL;
		int n;

		if (name == NULL)
			continue;
		n = snprintf(buf + used, 64 - used, "%s%s", used > 1 ? "," : "", name);
		if (n < 0 || (size_t)n >= 64 - used - 1)
			break; /* cannot happen: four short names fit */
		used += (size_t)n;
	}
	buf[used++] = '}';
	buf[used] = '\0';
	return buf;
}

void store_json_page(const struct store_page *page, char after[24], char limit[24])
{
	snprintf(after, 24, "%" PRId64, page->after > 0 ? page->after : 0);
	snprintf(limit, 24, "%d", (page->limit > 0 ? page->limit : 50) + 1);
}

char *store_json_text(const json_t *obj)
{
	char *text = NULL;

	text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		log_warnx("json_dumps: failed");
	return text;
}
