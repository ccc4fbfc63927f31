#!/bin/bash
# One-shot: SCRAM users for the gateway nodes, the topics (replication factor 3,
# min.insync.replicas=2) and the ACLs. Idempotent: run it again after a change.
#
# Who reads an inbox: the node that hosts the participant, so the ACLs are
# granted to that node's principal (User:node-a, User:node-b). A participant that
# runs its own node (a contractor hosting itself) thereby has its own principal,
# and no principal can read an inbox whose participant it does not host.
set -euo pipefail
secrets=${KAFKA_SECRETS:-/run/kafka-secrets}
bin=${KAFKA_BIN:-/opt/kafka/bin}
bootstrap=kafka-1:9092,kafka-2:9092,kafka-3:9092
prefix=gw.
admin=$(mktemp)
trap 'rm -f "$admin"' EXIT
umask 077
cat > "$admin" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$secrets/admin.password")";
PROPERTIES

# node principal -> the participants it hosts (keep in step with deploy/compose/node-*.yaml)
declare -A hosts=(
    [node-a]="minhealth"
    [node-b]="socialtreasury acme-analytics"
)

topic() {  # name partitions [extra kafka-topics arguments]
    "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --command-config "$admin" \
        --create --if-not-exists --topic "$1" --partitions "$2" --replication-factor 3 \
        --config min.insync.replicas=2 "${@:3}"
}

acl() {  # principal, then kafka-acls arguments
    "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$admin" \
        --add --allow-principal "User:$1" "${@:2}"
}

for node in "${!hosts[@]}"; do
    "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$admin" \
        --alter --entity-type users --entity-name "$node" \
        --add-config "SCRAM-SHA-512=[password=$(cat "$secrets/users/$node.password")]"
done

topic "${prefix}audit" 3
topic "${prefix}registry" 1 --config cleanup.policy=compact
for node in "${!hosts[@]}"; do
    for participant in ${hosts[$node]}; do
        topic "${prefix}inbox.$participant" 3
        topic "${prefix}dlq.$participant" 3
    done
done

for node in "${!hosts[@]}"; do
    # Publish to any participant's inbox (a publish fans out to every recipient).
    acl "$node" --operation Write --operation Describe \
        --topic "${prefix}inbox." --resource-pattern-type prefixed
    acl "$node" --operation Write --operation Describe --topic "${prefix}audit"
    acl "$node" --operation Read --operation Describe --topic "${prefix}registry"
    for participant in ${hosts[$node]}; do
        # Read only the inboxes (and their consumer groups) of hosted participants.
        acl "$node" --operation Read --operation Describe --topic "${prefix}inbox.$participant"
        acl "$node" --operation Read --group "${prefix}inbox.$participant"
        acl "$node" --operation Read --operation Write --operation Describe \
            --topic "${prefix}dlq.$participant"
    done
done

"$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$admin" --list
echo "provision: topics, users and ACLs are in place"
