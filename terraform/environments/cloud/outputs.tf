output "grafana_url" {
  description = "Grafana: the URL you expose it under, or a port-forward."
  value       = var.grafana_url != "" ? var.grafana_url : "kubectl -n ${module.platform.namespace} port-forward svc/grafana 3000:3000, then http://localhost:3000"
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
  description = "How to reach Kafka from a workstation."
  value       = module.platform.kafka_access
}

output "kafdrop_access" {
  description = "Kafdrop, the Kafka web UI (no login, so not exposed: the prod overlay admits nobody to it)."
  value       = "kubectl -n ${module.platform.namespace} port-forward svc/kafdrop 9000:9000, then http://localhost:9000"
}
