public enum MolamArchiveModule {}
