output "grafana_url" {
  description = "Grafana (user admin; password: terraform output -raw grafana_admin_password)."
  value       = "http://localhost:${var.grafana_host_port}"
}

output "kafdrop_url" {
  description = "Kafdrop, the web UI for the topics, consumer groups and messages."
  value       = "http://localhost:${var.kafdrop_host_port}"
}

output "grafana_admin_password" {
  description = "Password of Grafana's admin user."
  value       = module.platform.grafana_admin_password
  sensitive   = true
}

output "kafka_bootstrap" {
  description = "Kafka bootstrap address inside the cluster."
  value       = module.platform.kafka_bootstrap
}

output "kafka_access" {
  description = "How to reach Kafka from this machine."
  value       = module.platform.kafka_access
}

output "overlay" {
  description = "The overlay that was applied (demo when no API key was given)."
  value       = local.overlay
}

output "kubectl_context" {
  description = "kubectl context of the cluster."
  value       = "kind-${module.cluster.name}"
}
