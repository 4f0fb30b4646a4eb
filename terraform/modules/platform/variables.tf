variable "overlay" {
  description = "Kustomize overlay under k8s/overlays to apply: dev, demo or prod."
  type        = string

  validation {
    condition     = contains(["dev", "demo", "prod"], var.overlay)
    error_message = "overlay must be one of dev, demo, prod."
  }
}

variable "namespace" {
  description = "Namespace the overlay deploys into (set by k8s/base/kustomization.yaml)."
  type        = string
  default     = "market"
}

variable "twelvedata_api_key" {
  description = "TwelveData API key for ingest, stored as the Secret `twelvedata`. Empty: no Secret (the demo overlay needs none). Note: Terraform keeps it in its state in plain text."
  type        = string
  default     = ""
  sensitive   = true
}

variable "images" {
  description = "Image overrides for the overlay, keyed by image name in the manifests (mdsp-engine, mdsp-ingest, ...)."
  type = map(object({
    new_name = optional(string)
    new_tag  = optional(string)
    digest   = optional(string)
  }))
  default = {}
}

variable "wait_timeout" {
  description = "How long to wait for Deployments and StatefulSets to become ready."
  type        = string
  default     = "10m"
}
