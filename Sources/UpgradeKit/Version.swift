public enum UpgradeKitVersion { public static let string = "0.1.0" }
