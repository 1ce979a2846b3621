// Quiet JSON logs in tests unless asked for (STROKE_NODE_LOG_SILENT=0 to see them).
if (process.env.STROKE_NODE_LOG_SILENT === undefined) process.env.STROKE_NODE_LOG_SILENT = '1';
