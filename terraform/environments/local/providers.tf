provider "kind" {}

provider "kustomization" {
  kubeconfig_raw = module.cluster.kubeconfig
}

provider "kubernetes" {
  host                   = module.cluster.endpoint
  cluster_ca_certificate = module.cluster.cluster_ca_certificate
  client_certificate     = module.cluster.client_certificate
  client_key             = module.cluster.client_key
}
