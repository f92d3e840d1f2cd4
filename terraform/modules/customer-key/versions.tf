terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.49 is the first release with rotation_period_in_days on aws_kms_key.
      version = ">= 5.49, < 7.0"
    }
  }
}
