#!/bin/bash
# The log-volume child of the benchmarks: BENCH_FLOOD_LINES lines of a realistic DataHub
# log line, written as fast as `yes` can, between two lines with bash's clock; then one
# line holding the secret it was handed, which must reach the log masked.
echo "flood-child started at $EPOCHREALTIME"
yes '[2026-11-22 10:00:00,123] INFO     {datahub.ingestion.source.sql.sql_common:712} - Processed table urn:li:dataset:(urn:li:dataPlatform:postgres,db.public.orders,PROD), 42 columns' \
    | head -n "${BENCH_FLOOD_LINES:?}"
echo "flood-child exits at $EPOCHREALTIME"
echo "flood-child connecting with password=${BENCH_PASSWORD:-}"
