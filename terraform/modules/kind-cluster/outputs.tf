output "name" {
  description = "Name of the cluster (kubectl context kind-<name>)."
  value       = kind_cluster.this.name
}

output "kubeconfig" {
  description = "Kubeconfig of the cluster."
  value       = kind_cluster.this.kubeconfig
  sensitive   = true
}

output "endpoint" {
  description = "API server endpoint."
  value       = kind_cluster.this.endpoint
}

output "client_certificate" {
  description = "Client certificate for the API server."
  value       = kind_cluster.this.client_certificate
  sensitive   = true
}

output "client_key" {
  description = "Client key for the API server."
  value       = kind_cluster.this.client_key
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "CA certificate of the API server."
  value       = kind_cluster.this.cluster_ca_certificate
  sensitive   = true
}

output "images_loaded" {
  description = "Images loaded into the nodes; depend on this before deploying."
  value       = [for image in kind_load.image : image.image]
}
