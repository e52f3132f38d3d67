# Import an existing tag: REPOSITORY:TAG, or the full <registry host>/<repository>:<tag>.
terraform import ecrmirror_image.nginx mirror/nginx:1.27
terraform import ecrmirror_image.nginx 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/nginx:1.27

# Import cannot know where the image came from: set docker_source in the configuration.
# The first plan then shows an in-place update that sets docker_source; when ECR already
# holds that image (same image config for the platform), applying it transfers nothing.
#
# With an import block instead, `terraform plan -generate-config-out=generated.tf` writes
# the resource with `docker_source = null`: fill it in before applying.
