#!/bin/sh
# Compile the migrations into the programs: prints a C file holding each
# sql/NNNN_name.sql as { "NNNN_name", "<text>", NULL } in the order given
# (the third member is the PostgreSQL variant, see lib/db_engine.h).
set -eu
echo '/* generated from sql/ by sql/embed.sh; do not edit */'
echo '#include "lib/db_engine.h"'
echo 'const struct db_migration db_migrations[] = {'
for f in "$@"; do
	name=$(basename "$f" .sql)
	printf '\t{ "%s",\n' "$name"
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t    "/' -e 's/$/\\n"/' "$f"
	printf '\t    , NULL },\n'
done
echo '};'
echo 'const size_t db_nmigrations = sizeof(db_migrations) / sizeof(db_migrations[0]);'
