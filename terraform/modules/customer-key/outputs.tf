output "key_arn" {
  description = "ARN of the key. Give it to the platform operator: it goes into the platform module's orgs map and into `kmsbridge org add ORG --kms-key ARN`."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "Id of the key."
  value       = aws_kms_key.this.key_id
}

output "alias_arn" {
  description = "ARN of the key's alias. The platform must be given the key ARN, not the alias: key policies and grants authorise the key."
  value       = aws_kms_alias.this.arn
}

output "alias_name" {
  description = "Name of the key's alias."
  value       = aws_kms_alias.this.name
}

output "key_policy" {
  description = "The key policy as applied (JSON)."
  value       = data.aws_iam_policy_document.this.json
}

output "revoked_key_policy" {
  description = "The key policy without any platform statement (JSON), the revoked-period deny kept: what revoke_commands.remove_from_key_policy puts in place."
  value       = data.aws_iam_policy_document.administration.json
}

output "grant_ids" {
  description = "KMS grant ids by \"<role>/<org>\" (access_mode = \"grants\"); empty in key_policy mode."
  value       = { for name, grant in aws_kms_grant.platform : name => grant.grant_id }
}

output "revoke_commands" {
  description = "Exact AWS CLI commands that cut the platform off this key (run with the customer account's credentials). Playback stops within the decryptor's KMSBRIDGE_MAX_AGE_SECONDS. Each one is undone by the next terraform apply unless you also set key_enabled = false or platform_access_enabled = false."
  value = {
    disable_key            = "aws kms disable-key --key-id ${aws_kms_key.this.arn}"
    re_enable_key          = "aws kms enable-key --key-id ${aws_kms_key.this.arn}"
    revoke_grants          = [for name, grant in aws_kms_grant.platform : "aws kms revoke-grant --key-id ${aws_kms_key.this.arn} --grant-id ${grant.grant_id}"]
    remove_from_key_policy = "terraform output -raw revoked_key_policy > kmsbridge-revoked-key-policy.json && aws kms put-key-policy --key-id ${aws_kms_key.this.arn} --policy-name default --policy file://kmsbridge-revoked-key-policy.json"
    schedule_key_deletion  = "aws kms schedule-key-deletion --key-id ${aws_kms_key.this.arn} --pending-window-in-days ${var.deletion_window_in_days}"
  }
}
