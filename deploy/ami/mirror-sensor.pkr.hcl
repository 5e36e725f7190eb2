# The mirror sensor AMI: Debian 12 (the release binary is built on Debian 12,
# so its glibc matches), the sensor binary, its systemd units, the sysctl
# settings, the sensor's user and the default configuration.
#
#   cargo build --release -p sensor --bin sensor
#   packer build -var region=eu-west-1 \
#     -var sensor_binary=target/release/sensor deploy/ami/mirror-sensor.pkr.hcl
#
# Run from the workspace root (the deployed files are found relative to this
# template). Credentials come from the usual AWS environment or profile.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the AMI is built in (copy it to others with the EC2 console or CLI)."
}

variable "instance_type" {
  type        = string
  default     = "c6i.large"
  description = "Instance type of the build instance (x86_64)."
}

variable "sensor_binary" {
  type        = string
  default     = "target/release/sensor"
  description = "The release binary: cargo build --release -p sensor --bin sensor."
}

variable "ami_name_prefix" {
  type    = string
  default = "mirror-sensor"
}

locals {
  build_time = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "debian12" {
  region        = var.region
  instance_type = var.instance_type
  ami_name      = "${var.ami_name_prefix}-${local.build_time}"
  ssh_username  = "admin"

  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    # Debian's own account publishes the official images.
    owners      = ["136693071363"]
    most_recent = true
  }

  tags = {
    Name = "${var.ami_name_prefix}-${local.build_time}"
  }
}

build {
  sources = ["source.amazon-ebs.debian12"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/mirror-sensor"]
  }

  provisioner "file" {
    source      = var.sensor_binary
    destination = "/tmp/mirror-sensor/sensor"
  }

  provisioner "file" {
    sources = [
      "${path.root}/sensor.toml",
      "${path.root}/../systemd/mirror-sensor.service",
      "${path.root}/../systemd/mirror-sensor-config.service",
      "${path.root}/../systemd/mirror-sensor-config",
      "${path.root}/../systemd/90-mirror-sensor.conf",
      "${path.root}/../systemd/mirror-sensor.sysusers",
    ]
    destination = "/tmp/mirror-sensor/"
  }

  provisioner "shell" {
    execute_command = "sudo sh -eu '{{ .Path }}'"
    inline = [
      "export DEBIAN_FRONTEND=noninteractive",
      "apt-get update -qq",
      "apt-get install -y -qq curl ca-certificates",
      "cd /tmp/mirror-sensor",
      "install -m 0755 sensor /usr/local/bin/sensor",
      "install -m 0755 mirror-sensor-config /usr/local/bin/mirror-sensor-config",
      "install -m 0644 mirror-sensor.sysusers /etc/sysusers.d/mirror-sensor.conf",
      "systemd-sysusers /etc/sysusers.d/mirror-sensor.conf",
      "install -d -m 0755 /etc/mirror-sensor",
      "install -m 0644 sensor.toml /etc/mirror-sensor/sensor.toml",
      "/usr/local/bin/sensor check-config /etc/mirror-sensor/sensor.toml >/dev/null",
      "install -m 0644 90-mirror-sensor.conf /etc/sysctl.d/90-mirror-sensor.conf",
      "install -m 0644 mirror-sensor.service /etc/systemd/system/mirror-sensor.service",
      "install -m 0644 mirror-sensor-config.service /etc/systemd/system/mirror-sensor-config.service",
      "systemd-analyze verify /etc/systemd/system/mirror-sensor.service /etc/systemd/system/mirror-sensor-config.service",
      "systemctl daemon-reload",
      "systemctl enable mirror-sensor-config.service mirror-sensor.service",
      "rm -rf /tmp/mirror-sensor",
    ]
  }
}
