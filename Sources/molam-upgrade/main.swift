import UpgradeKit
print("molam-upgrade \(UpgradeKitVersion.string)")
