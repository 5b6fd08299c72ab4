export * from './clients';
export * from './engine';
export * from './blobs';
