resource "aws_ecr_repository" "nginx" {
  name = "mirror/nginx"
}

resource "ecrmirror_image" "nginx" {
  docker_source = "nginx:1.27"
  repository    = aws_ecr_repository.nginx.name
  platform      = "linux/amd64"

  timeouts {
    create = "30m"
  }
}

# Use the pinned reference in task definitions.
output "nginx_image" {
  value = ecrmirror_image.nginx.image_uri_digest
}
