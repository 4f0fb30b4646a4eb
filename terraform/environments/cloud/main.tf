# Cloud environment: the prod overlay on any existing cluster reachable through a kubeconfig
# (create the cluster with your platform's module, e.g. terraform-aws-modules/eks/aws). The
# cluster needs a default StorageClass for ReadWriteOnce volumes (Kafka, Cassandra and the
# engine's state).

module "platform" {
  source = "../../modules/platform"

  overlay            = "prod"
  twelvedata_api_key = var.twelvedata_api_key
  images = {
    "mdsp-engine" = { new_name = var.engine_image, new_tag = var.image_tag, digest = var.engine_digest }
    "mdsp-ingest" = { new_name = var.ingest_image, new_tag = var.image_tag, digest = var.ingest_digest }
  }
}
