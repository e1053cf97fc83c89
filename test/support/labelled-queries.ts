/** Three labelled queries per default expert domain (the seed's six), for routing tests. */
export const QUERIES: Record<string, string[]> = {
  python: ['How do I read a CSV into a pandas DataFrame?', 'My Python list comprehension is slow', 'pip install fails in my virtualenv'],
  sql: ['This LEFT JOIN query is slow on Postgres', 'How do I add an index to a table?', 'Write a SELECT with GROUP BY and HAVING'],
  javascript: ['React useEffect runs twice', 'How do promises and async/await work in Node.js?', 'npm package.json scripts for a TypeScript build'],
  debug: ['Segmentation fault with a stack trace in gdb', 'Why does my program throw a null pointer exception?', 'Set a breakpoint and step through the crash'],
  ml: ['Train a neural network classifier with PyTorch', 'My model overfits: regularisation and dropout', 'Gradient descent learning rate for a transformer'],
  api: ['Design a REST endpoint with pagination', 'OAuth2 bearer token for my HTTP API', 'Rate limiting and 429 responses in a web service'],
};
