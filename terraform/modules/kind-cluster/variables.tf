variable "name" {
  description = "Name of the kind cluster."
  type        = string
  default     = "market-data"
}

variable "node_image" {
  description = "kindest/node image, i.e. the Kubernetes version of the cluster."
  type        = string
  default     = "kindest/node:v1.32.2"
}

variable "grafana_host_port" {
  description = "Port on the host that reaches Grafana's NodePort (30300 in the dev overlay)."
  type        = number
  default     = 3000
}

variable "kafdrop_host_port" {
  description = "Port on the host that reaches Kafdrop's NodePort (30900 in the dev overlay)."
  type        = number
  default     = 9000
}

variable "images" {
  description = "Locally built images to load into the cluster's nodes (they must exist in the local Docker daemon)."
  type        = list(string)
  default     = []
}
