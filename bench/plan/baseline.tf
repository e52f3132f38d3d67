# Plan overhead baseline: the same shape made of terraform_data resources (make bench).
variable "source_image" {
  type = string
}

variable "repository" {
  type = string
}

variable "n" {
  type = number
}

# Set as for the mirrors; unused.
variable "verified" {
  type    = bool
  default = false
}

resource "terraform_data" "m" {
  count = var.n
  input = "${var.repository}:t${count.index} from ${var.source_image}"
}
