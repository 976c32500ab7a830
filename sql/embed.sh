#!/bin/sh
# Compile the migrations into the programs: prints a C file holding each
# sql/NNNN_name.sql as { "NNNN_name", "<text>", <pg> } in the order given,
# where <pg> is the text of sql/pg/NNNN_name.sql, PostgreSQL's variant of
# the same migration, or NULL when the file works on both engines.
set -eu

# A file as one C string literal, a line of text per line of C.
literal() {
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t    "/' -e 's/$/\\n"/' "$1"
}

echo '/* generated from sql/ by sql/embed.sh; do not edit */'
echo '#include "lib/db_engine.h"'
echo 'const struct db_migration db_migrations[] = {'
for f in "$@"; do
	name=$(basename "$f" .sql)
	pg=$(dirname "$f")/pg/$name.sql
	printf '\t{ "%s",\n' "$name"
	literal "$f"
	printf '\t    ,\n'
	if [ -f "$pg" ]; then
		literal "$pg"
	else
		printf '\t    NULL\n'
	fi
	printf '\t},\n'
done
echo '};'
echo 'const size_t db_nmigrations = sizeof(db_migrations) / sizeof(db_migrations[0]);'
