# A single-node kind cluster with the NodePorts of Grafana and Kafdrop mapped to the host, and the locally built
# images loaded into it (the dev overlay never pulls them).
resource "kind_cluster" "this" {
  name           = var.name
  node_image     = var.node_image
  wait_for_ready = true

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"

      extra_port_mappings {
        container_port = 30300
        host_port      = var.grafana_host_port
      }

      extra_port_mappings {
        container_port = 30900
        host_port      = var.kafdrop_host_port
      }
    }
  }
}

resource "kind_load" "image" {
  for_each = toset(var.images)

  image        = each.value
  cluster_name = kind_cluster.this.name
}
