variable "kubeconfig_path" {
  description = "Kubeconfig of the target cluster (any conformant cluster: EKS, GKE, AKS, on-prem)."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Context in the kubeconfig; empty for its current context."
  type        = string
  default     = ""
}

variable "twelvedata_api_key" {
  description = "TwelveData API key (export TF_VAR_twelvedata_api_key=...)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.twelvedata_api_key) > 0
    error_message = "The prod overlay runs `ingest run`, which needs a TwelveData API key."
  }
}

variable "engine_image" {
  description = "Engine image in a registry the cluster can pull from, e.g. registry.example.com/mdsp-engine."
  type        = string
}

variable "ingest_image" {
  description = "Ingest image in a registry the cluster can pull from, e.g. registry.example.com/mdsp-ingest."
  type        = string
}

variable "image_tag" {
  description = "Tag of both images."
  type        = string
  default     = "0.1.0"
}

variable "engine_digest" {
  description = "Optional sha256 digest of the engine image (pins it beyond the tag)."
  type        = string
  default     = null
}

variable "ingest_digest" {
  description = "Optional sha256 digest of the ingest image."
  type        = string
  default     = null
}

variable "grafana_url" {
  description = "URL under which Grafana is exposed (Ingress or LoadBalancer you provide); reported as an output."
  type        = string
  default     = ""
}
