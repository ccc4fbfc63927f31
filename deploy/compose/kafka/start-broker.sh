#!/bin/bash
# One Apache Kafka KRaft node (broker and controller) of the compose cluster.
# The server properties are written at each start from the secrets the init
# service generated (never committed); the storage is formatted on first start
# only, with the SCRAM credentials of the admin user (the inter-broker principal).
set -euo pipefail
: "${KAFKA_NODE_ID:?}"
secrets=/run/kafka-secrets
data=/var/lib/kafka/data
config=/tmp/server.properties
umask 077

admin_password=$(cat "$secrets/admin.password")
controller_password=$(cat "$secrets/controller.password")
cluster_id=$(cat "$secrets/cluster-id")

cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
controller.listener.names=CONTROLLER
listeners=CLIENT://:9092,CONTROLLER://:9093
advertised.listeners=CLIENT://kafka-${KAFKA_NODE_ID}:9092
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENT
# Clients and brokers authenticate with SCRAM (credentials in the metadata log);
# the controller quorum with PLAIN (SCRAM needs the metadata the quorum serves).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin_password}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${controller_password}" user_controller="${controller_password}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:controller
allow.everyone.if.no.acl.found=false
# Durability: every topic on three brokers, a write acknowledged by two at least.
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
num.partitions=3
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
unclean.leader.election.enable=false
log.dirs=${data}
PROPERTIES

# The admin client settings the healthcheck and the provisioning service use.
cat > /tmp/admin-client.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin_password}";
PROPERTIES

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --config "$config" \
    --cluster-id "$cluster_id" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_password}]"
exec /opt/kafka/bin/kafka-server-start.sh "$config"
