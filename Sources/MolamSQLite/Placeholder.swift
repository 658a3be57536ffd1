public enum MolamSQLiteModule {}
