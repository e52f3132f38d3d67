terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

# Read a mirror another configuration owns (a shared mirroring stack), and pin it.
data "ecrmirror_image" "nginx" {
  repository = "mirror/nginx"
  tag        = "1.27"
}

output "nginx_pinned" {
  value = data.ecrmirror_image.nginx.image_uri_digest
}
