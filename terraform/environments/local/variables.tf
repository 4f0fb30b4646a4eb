variable "cluster_name" {
  description = "Name of the kind cluster."
  type        = string
  default     = "market-data"
}

variable "twelvedata_api_key" {
  description = "TwelveData API key (export TF_VAR_twelvedata_api_key=...). Empty: the demo overlay runs simulated ticks instead."
  type        = string
  default     = ""
  sensitive   = true
}

variable "engine_image" {
  description = "Locally built engine image (docker build --target engine -t mdsp-engine:dev .)."
  type        = string
  default     = "mdsp-engine:dev"
}

variable "ingest_image" {
  description = "Locally built ingest image (docker build --target ingest -t mdsp-ingest:dev .)."
  type        = string
  default     = "mdsp-ingest:dev"
}

variable "load_images" {
  description = "Load engine_image and ingest_image from the local Docker daemon into kind."
  type        = bool
  default     = true
}

variable "grafana_host_port" {
  description = "Host port for Grafana (http://localhost:<port>)."
  type        = number
  default     = 3000
}

variable "kafdrop_host_port" {
  description = "Host port for Kafdrop, the Kafka web UI (http://localhost:<port>)."
  type        = number
  default     = 9000
}
