terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

# The repository must exist: create it with an `aws_ecr_repository` resource and use its
# `name` here, so that Terraform creates it first. (Or let ECR create it on push: a
# repository creation template applied for CREATE_ON_PUSH whose prefix covers the name.)
resource "ecrmirror_image" "nginx" {
  docker_source = "nginx:1.27"
  repository    = "mirror/nginx"
  platform      = "linux/amd64"

  timeouts {
    create = "30m"
  }
}

# Use the pinned reference in task definitions.
output "nginx_image" {
  value = ecrmirror_image.nginx.image_uri_digest
}
