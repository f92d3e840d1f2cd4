terraform {
  # 1.11: the tests' override_resource blocks use override_during; cross-variable
  # validation needs 1.9.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100: the release the tests run (5.90 to 5.97 warn on an empty lifecycle filter;
      # 5.49 first had rotation_period_in_days).
      version = ">= 5.100, < 7.0"
    }
  }
}
