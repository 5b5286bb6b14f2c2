#!/bin/bash
# The trivial child of the benchmarks: stands in for the datahub CLI, imports nothing,
# and prints when it started and when it exits (bash's own clock, no process started).
echo "trivial-child started at $EPOCHREALTIME"
echo "trivial-child exits at $EPOCHREALTIME"
