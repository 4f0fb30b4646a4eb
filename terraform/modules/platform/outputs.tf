output "namespace" {
  description = "Namespace of the pipeline."
  value       = var.namespace
}

output "kafka_bootstrap" {
  description = "Kafka bootstrap address inside the cluster."
  value       = "kafka-broker.${var.namespace}.svc.cluster.local:9092"
}

output "kafka_access" {
  description = "How to reach Kafka from a workstation."
  value       = "kubectl -n ${var.namespace} exec -it kafka-0 -- /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic market.ticks (brokers advertise in-cluster DNS names, so clients must run inside the cluster)"
}

output "grafana_admin_password" {
  description = "Password of Grafana's admin user."
  value       = random_password.grafana_admin.result
  sensitive   = true
}

output "resource_ids" {
  description = "Every Kubernetes object applied from the overlay."
  value       = data.kustomization_overlay.this.ids
}
