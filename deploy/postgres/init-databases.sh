#!/usr/bin/env bash
# One database and one login role per service (database-per-service): each service owns its
# tables and nothing else. Run once by the postgres image on an empty data directory
# (/docker-entrypoint-initdb.d); the passwords come from the postgres container's environment
# (see docker-compose.yml). Role and database names match BALI_DATABASE_URL of each service.
set -euo pipefail

create_service_database() {
  local name="$1" password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" \
    -v name="$name" -v password="$password" <<-'EOSQL'
	CREATE ROLE :"name" LOGIN PASSWORD :'password';
	CREATE DATABASE :"name" OWNER :"name" ENCODING 'UTF8';
	REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
	GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
EOSQL
}

create_service_database activities "${ACTIVITIES_DB_PASSWORD:?ACTIVITIES_DB_PASSWORD is required}"
create_service_database consultation "${CONSULTATION_DB_PASSWORD:?CONSULTATION_DB_PASSWORD is required}"
create_service_database notifications "${NOTIFICATIONS_DB_PASSWORD:?NOTIFICATIONS_DB_PASSWORD is required}"
create_service_database reporting "${REPORTING_DB_PASSWORD:?REPORTING_DB_PASSWORD is required}"
