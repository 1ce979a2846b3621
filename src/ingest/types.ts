import { Config } from '../config/schema';
export type DimseConfig = Config['dimse'];
export type HttpConfig = Config['http'];
