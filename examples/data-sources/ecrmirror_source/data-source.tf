terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

# What nginx:1.27 names upstream now, without mirroring anything.
data "ecrmirror_source" "nginx" {
  docker_source = "nginx:1.27"
  platform      = "linux/arm64/v8"
}

# Re-mirror whenever the upstream tag moves, read at every plan.
resource "ecrmirror_image" "nginx" {
  docker_source = "nginx:1.27"
  repository    = "mirror/nginx"
  copy_method   = "registry"
  platforms     = ["linux/amd64", "linux/arm64/v8"]

  triggers = {
    upstream = data.ecrmirror_source.nginx.digest
  }
}

output "nginx_platforms" {
  value = data.ecrmirror_source.nginx.platforms
}

output "nginx_arm64_digest" {
  value = data.ecrmirror_source.nginx.platform_digest
}
