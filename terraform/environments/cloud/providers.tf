provider "kustomization" {
  kubeconfig_path = pathexpand(var.kubeconfig_path)
  context         = var.kube_context == "" ? null : var.kube_context
}

provider "kubernetes" {
  config_path    = pathexpand(var.kubeconfig_path)
  config_context = var.kube_context == "" ? null : var.kube_context
}
