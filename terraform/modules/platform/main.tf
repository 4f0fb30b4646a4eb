# Applies one overlay of k8s/ (which already includes the queries, schema and Grafana
# ConfigMaps) with the kbst/kustomization provider, plus the Secrets that never live in the
# tree: the TwelveData API key and Grafana's admin password.
#
# Order (the provider's ids_prio pattern): namespaces and CRDs first, then the Secrets, then
# everything else (waiting for workloads to become ready), then admission webhooks.

locals {
  overlay_path = abspath("${path.module}/../../../k8s/overlays/${var.overlay}")
}

data "kustomization_overlay" "this" {
  resources = [local.overlay_path]

  dynamic "images" {
    for_each = var.images
    content {
      name     = images.key
      new_name = images.value.new_name
      new_tag  = images.value.new_tag
      digest   = images.value.digest
    }
  }
}

resource "kustomization_resource" "p0" {
  for_each = data.kustomization_overlay.this.ids_prio[0]

  manifest = (
    contains(["_/Secret"], regex("(?P<group_kind>.*/.*)/.*/.*", each.value)["group_kind"])
    ? sensitive(data.kustomization_overlay.this.manifests[each.value])
    : data.kustomization_overlay.this.manifests[each.value]
  )
}

resource "kubernetes_secret_v1" "twelvedata" {
  count = var.twelvedata_api_key == "" ? 0 : 1

  metadata {
    name      = "twelvedata"
    namespace = var.namespace
  }

  data = {
    TWELVEDATA_API_KEY = var.twelvedata_api_key
  }

  depends_on = [kustomization_resource.p0]
}

resource "random_password" "grafana_admin" {
  length  = 24
  special = false
}

resource "kubernetes_secret_v1" "grafana_admin" {
  metadata {
    name      = "grafana-admin"
    namespace = var.namespace
  }

  data = {
    password = random_password.grafana_admin.result
  }

  depends_on = [kustomization_resource.p0]
}

resource "kustomization_resource" "p1" {
  for_each = data.kustomization_overlay.this.ids_prio[1]

  manifest = (
    contains(["_/Secret"], regex("(?P<group_kind>.*/.*)/.*/.*", each.value)["group_kind"])
    ? sensitive(data.kustomization_overlay.this.manifests[each.value])
    : data.kustomization_overlay.this.manifests[each.value]
  )

  wait = true

  timeouts {
    create = var.wait_timeout
    update = var.wait_timeout
  }

  depends_on = [
    kustomization_resource.p0,
    kubernetes_secret_v1.twelvedata,
    kubernetes_secret_v1.grafana_admin,
  ]
}

resource "kustomization_resource" "p2" {
  for_each = data.kustomization_overlay.this.ids_prio[2]

  manifest = (
    contains(["_/Secret"], regex("(?P<group_kind>.*/.*)/.*/.*", each.value)["group_kind"])
    ? sensitive(data.kustomization_overlay.this.manifests[each.value])
    : data.kustomization_overlay.this.manifests[each.value]
  )

  depends_on = [kustomization_resource.p1]
}
