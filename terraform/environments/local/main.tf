# Local environment: a kind cluster, the locally built images loaded into it, and the dev
# overlay (or the demo overlay, with simulated ticks, when no API key is given).

locals {
  overlay = var.twelvedata_api_key == "" ? "demo" : "dev"
  # "name:tag" -> { name, tag } for the kustomize image override.
  engine = { name = split(":", var.engine_image)[0], tag = split(":", var.engine_image)[1] }
  ingest = { name = split(":", var.ingest_image)[0], tag = split(":", var.ingest_image)[1] }
}

module "cluster" {
  source = "../../modules/kind-cluster"

  name              = var.cluster_name
  grafana_host_port = var.grafana_host_port
  kafdrop_host_port = var.kafdrop_host_port
  images            = var.load_images ? [var.engine_image, var.ingest_image] : []
}

module "platform" {
  source = "../../modules/platform"

  overlay            = local.overlay
  twelvedata_api_key = var.twelvedata_api_key
  images = {
    "mdsp-engine" = { new_name = local.engine.name, new_tag = local.engine.tag }
    "mdsp-ingest" = { new_name = local.ingest.name, new_tag = local.ingest.tag }
  }

  depends_on = [module.cluster]
}
