#!/bin/sh
# Creates the secret files compose.yaml mounts, with random values, in
# ./secrets/ at the repository root (git-ignored). Files that already exist
# are kept, so it is safe to run again; delete a file to regenerate it (and
# `docker compose down -v` afterwards: RabbitMQ and MinIO keep the
# credentials of their first start in their volumes).
#
#   secrets/amqp_url              amqp://rehost:<random>@rabbitmq:5672/%2f
#                                 (the worker's broker URL; RabbitMQ's first
#                                 user is derived from it)
#   secrets/minio_root_user       MinIO's root user (console, minio-setup)
#   secrets/minio_root_password   its password
#   secrets/s3_access_key_id      the worker's own MinIO user (object access
#   secrets/s3_secret_access_key  on bucket `media` only) and its secret
#
# Local use only. Needs only a POSIX shell, od and tr.
set -eu
cd "$(dirname "$0")/.."

dir=secrets
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

put() {
  if [ -e "$dir/$1" ]; then
    echo "kept     $dir/$1"
  else
    printf '%s\n' "$2" > "$dir/$1"
    echo "created  $dir/$1"
  fi
  # The containers read these as other users (the worker as uid 10001):
  # the files are world-readable, the directory (0700) is what protects them.
  chmod 0644 "$dir/$1"
}

put amqp_url "amqp://rehost:$(random)@rabbitmq:5672/%2f"
put minio_root_user "rehost-admin"
put minio_root_password "$(random)"
put s3_access_key_id "rehost-worker"
put s3_secret_access_key "$(random)"
