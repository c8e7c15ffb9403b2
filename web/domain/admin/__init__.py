"""The operator's admin (运维管理): tenants, hotline numbers and their number
classes, trunks, users, backups and the appliance's health. Operators only;
anyone else gets 403 from the role check."""
